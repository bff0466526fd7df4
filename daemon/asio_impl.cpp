// The one translation unit that compiles Boost.Asio (with its SSL support) and
// Boost.Beast. Every other file sees only their declarations, because
// BOOST_ASIO_SEPARATE_COMPILATION and BOOST_BEAST_SEPARATE_COMPILATION are set
// project-wide in the top-level CMakeLists.txt. This keeps a clean build on two
// cores in minutes instead of recompiling Asio in every file.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
