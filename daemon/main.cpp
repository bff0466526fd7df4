#include <iostream>
#include <string_view>


int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::cout << "customsd " << CUSTOMS_VERSION << "\n";
      return 0;
    }
  }
  std::cerr << "customsd: not implemented yet\n";
  return 2;
}
