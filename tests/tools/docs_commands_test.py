#!/usr/bin/env python3
"""The commands of README.md and docs/*.md, checked and run.

    docs_commands_test.py SOURCE_DIR BUILD_DIR CUSTOMSD CUSTOMSCTL FAKE_PROVIDER [--bench] [--self-test]

1. Every command line in a fenced block of README.md and docs/*.md (a
   trailing backslash joins lines, a leading "$ " is a prompt) is checked
   against what it names:
   - customsctl GROUP COMMAND ...: `customsctl GROUP COMMAND --help` exits 0
     and names every option the line uses (customsd likewise);
   - a path of the checkout run as a program or script (tools/scripts/...,
     bench/.../run.sh, python3 bench/...) exists, and every NAME=VALUE the
     line sets or lists in its comment is a variable the script reads;
   - build/release/X: the built file exists (bench programs with --bench).
2. The walkthroughs are run, with the commands taken from the docs as they
   are written (paths and ports substituted, nothing else):
   - README.md: customsd with config/customsd.yaml and the demo's fake
     provider; the curl commands, whose output must hold every line of the
     output block that follows them ("..." stands for any text); /rules,
     /metrics; audit verify and show; the claim that /openai-cn/ passes;
   - docs/rules.md: the quick-start pack written to acme.yaml, its check,
     test ("2 passed, 0 failed") and explain; the explain example's output
     against the shipped packs, line by line (its hash prefix included);
   - docs/auditor-guide.md: keys gen (files and modes of its table), verify
     with seed, signer and a checkpoint the guide's checkpoint command held
     back, show, export, report (table, csv, html), volumes, replay and erase
     on the trail the README walkthrough wrote; verify after the erasure;
   - docs/operator-guide.md: the config errors it shows (from --check-config
     of a config broken the same way), ca gen (modes as its comment says).
A command the test runs but cannot find in its document fails the test: a doc
that drops or renames one must change this test with it. --self-test breaks
copies of the docs in known ways and fails unless each break is reported.
Exit 0 when all holds, 1 on a failure (each named), 2 on a usage error.
"""

import glob
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import time

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


# --------------------------------------------------------------------------
# Reading the docs

def fenced_blocks(path):
    """(language, first line number, [lines]) of each fenced block."""
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if m:
            lang = m.group(2)
            start = i + 2
            body = []
            i += 1
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            out.append((lang, start, body))
        i += 1
    return out


def command_lines(block_lines, first_line):
    """(line number, text) of each logical line: backslash-newline joined,
    a leading "$ " prompt removed."""
    out = []
    cur, cur_at = None, 0
    for n, line in enumerate(block_lines):
        text = line
        if cur is None:
            cur_at = first_line + n
            if text.startswith("$ "):
                text = text[2:]
            cur = ""
        if text.rstrip().endswith("\\") and not text.rstrip().endswith("\\\\"):
            piece = text.rstrip()[:-1].rstrip()
            cur += (piece.lstrip() if cur else piece) + " "
            continue
        cur += text.lstrip() if cur else text
        out.append((cur_at, cur.strip()))
        cur = None
    if cur is not None:
        out.append((cur_at, cur.strip()))
    return out


def strip_comment(text):
    """The line without a trailing shell comment (a # after white space,
    outside quotes), and the comment."""
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip(), text[i + 1:].strip()
    return text, ""


def docs_files(src):
    return [os.path.join(src, "README.md")] + sorted(glob.glob(os.path.join(src, "docs", "*.md")))


def all_commands(src):
    """(file, line, text, language) of every logical line of every fenced block."""
    out = []
    for path in docs_files(src):
        for lang, first, body in fenced_blocks(path):
            for at, text in command_lines(body, first):
                if text:
                    out.append((os.path.relpath(path, src), at, text, lang))
    return out


def find_command(src, doc, prefix, first=False):
    """The one logical line of DOC's fenced blocks that starts with PREFIX (the
    first of several with FIRST)."""
    hits = [c for c in all_commands(src) if c[0] == doc and c[2].startswith(prefix)]
    if first and hits:
        return hits[0]
    if len(hits) != 1:
        fail("%s: expected one command starting with %r in its fenced blocks, found %d "
             "(a changed doc needs this test changed with it)" % (doc, prefix, len(hits)))
        return None
    return hits[0]


def block_after(src, doc, line):
    """The lines of the untagged fenced block that starts right after the block
    holding LINE (the output a doc shows for a command)."""
    blocks = fenced_blocks(os.path.join(src, doc))
    for i, (lang, first, body) in enumerate(blocks):
        if first <= line <= first + len(body):
            if i + 1 < len(blocks) and blocks[i + 1][0] == "" and \
                    blocks[i + 1][1] == first + len(body) + 2:
                return blocks[i + 1][2]
            return None
    return None


# --------------------------------------------------------------------------
# 1. Static checks

HELP_CACHE = {}


def help_text(argv):
    key = tuple(argv)
    if key not in HELP_CACHE:
        r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=30)
        HELP_CACHE[key] = (r.returncode, r.stdout + r.stderr)
    return HELP_CACHE[key]


def option_words(tokens):
    """The options a command line passes (also inside [usage brackets])."""
    out = []
    for t in tokens:
        t = t.strip("[]")
        if t == "--":
            break
        m = re.match(r"^(--?[A-Za-z][A-Za-z0-9-]*)(=.*)?$", t)
        if m:
            out.append(m.group(1))
    return out


def check_customs_command(where, tokens, customsd, customsctl):
    prog = os.path.basename(tokens[0])
    args = tokens[1:]
    if prog == "customsd":
        code, text = help_text([customsd])
        words = args
    else:
        words_before_options = []
        for t in args:
            if t.startswith("-") or t.startswith("["):
                break
            words_before_options.append(t)
        if not words_before_options:
            code, text = help_text([customsctl])
            words = args
        elif words_before_options[0] == "proxy-user":
            code, text = help_text([customsctl, "proxy-user"])
            words = args[1:]
        else:
            path = words_before_options[:2]
            code, text = help_text([customsctl] + path)
            if code != 0:
                fail("%s: `customsctl %s --help` exits %d: %s" % (where, " ".join(path), code, text.strip()[:200]))
                return
            words = args[len(path):]
    for opt in option_words(words):
        if not re.search(r"(^|[\s\[(|,])" + re.escape(opt) + r"($|[\s\]=)|,.])", text):
            fail("%s: option %s is not in the command's --help" % (where, opt))


def check_static(src, build, customsd, customsctl, bench):
    checked = 0
    for doc, at, text, lang in all_commands(src):
        if lang not in ("", "sh", "bash"):
            continue
        where = "%s:%d" % (doc, at)
        code_part, comment = strip_comment(text)
        if not code_part:
            continue
        try:
            tokens = shlex.split(code_part)
        except ValueError:
            continue
        # Assignments before the command, and wrappers.
        assigned = []
        while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
            assigned.append(tokens.pop(0).split("=")[0])
        if tokens[:3] == ["runuser", "-u", "customs"] and "--" in tokens:
            tokens = tokens[tokens.index("--") + 1:]
        if tokens and tokens[0] in ("bash", "python3", "source", "."):
            tokens = tokens[1:]
        if not tokens:
            continue
        prog = tokens[0]
        base = os.path.basename(prog)
        if base in ("customsd", "customsctl") and (prog == base or prog.startswith("build/")):
            if prog.startswith("build/"):
                built = os.path.join(build, prog[len("build/release/"):])
                if not os.path.exists(built):
                    fail("%s: %s is not built (%s)" % (where, prog, built))
            check_customs_command(where, tokens, customsd, customsctl)
            checked += 1
            continue
        if prog.startswith("build/release/"):
            if prog.startswith("build/release/bench/") and not bench:
                continue
            if not os.path.exists(os.path.join(build, prog[len("build/release/"):])):
                fail("%s: %s is not built" % (where, prog))
            checked += 1
            continue
        if "/" in prog and not prog.startswith("/") and re.match(r"^(\./)?(tools|bench|config|tests)/", prog):
            path = os.path.join(src, prog)
            if not os.path.exists(path):
                fail("%s: %s does not exist in the checkout" % (where, prog))
                continue
            checked += 1
            # NAME=VALUE set before it or listed in its comment: variables it reads.
            names = assigned + re.findall(r"\b([A-Z][A-Z0-9_]{2,})=", comment)
            if names and os.path.isfile(path):
                script = open(path, encoding="utf-8", errors="replace").read()
                for name in names:
                    if not re.search(r"\b" + name + r"\b", script):
                        fail("%s: %s does not read %s" % (where, prog, name))
    if checked < 30:
        fail("only %d commands found in the docs' fenced blocks: the extraction is broken" % checked)
    print("static: %d commands checked" % checked)


# --------------------------------------------------------------------------
# 2. Walkthroughs

class Env:
    pass


def run_shell(env, where, command, expect_code=0, cwd=None, stdin=None):
    """Runs a doc command with bash in the walkthrough's folder; customsctl
    and customsd are found on PATH (the built ones)."""
    r = subprocess.run(["bash", "-c", command], cwd=cwd or env.work, env=env.vars,
                       capture_output=True, text=True, timeout=120, input=stdin)
    if expect_code is not None and r.returncode != expect_code:
        fail("%s: `%s` exited %d, expected %d\n  stdout: %s\n  stderr: %s" %
             (where, command, r.returncode, expect_code, r.stdout[-800:], r.stderr[-800:]))
    return r


def line_matches(expected, actual):
    parts = expected.split("...")
    pattern = ".*".join(re.escape(p) for p in parts)
    return re.fullmatch(pattern, actual) is not None


def check_output_holds(where, expected_lines, output):
    """Every expected line (but "..." and blank ones) matches an output line,
    in order."""
    actual = [l.rstrip("\r") for l in output.split("\n")]
    pos = 0
    for exp in expected_lines:
        if exp.strip() in ("", "..."):
            continue
        while pos < len(actual) and not line_matches(exp, actual[pos]):
            pos += 1
        if pos == len(actual):
            fail("%s: the output does not hold the documented line %r (in order)\n  output:\n%s" %
                 (where, exp, "\n".join("    " + l for l in actual[:60])))
            return
        pos += 1


def check_output_equal(where, expected_lines, output):
    actual = output.rstrip("\n").split("\n")
    exp = [l for l in expected_lines]
    if len(actual) != len(exp) or not all(line_matches(e, a) for e, a in zip(exp, actual)):
        fail("%s: the output differs from the documented one\n  documented:\n%s\n  actual:\n%s" %
             (where, "\n".join("    " + l for l in exp), "\n".join("    " + l for l in actual)))


def start_provider(env):
    demo = open(os.path.join(env.src, "tools", "scripts", "demo.sh"), encoding="utf-8").read()
    m = re.search(r'--text "([^"]*)"', demo)
    if not m:
        fail("tools/scripts/demo.sh: no --text of the fake provider found")
        text = "Sure. Our Shanghai office answers on 138 1234 5678, nine to five."
    else:
        text = m.group(1)
    p = subprocess.Popen([env.fake_provider, "--address", "127.0.0.1", "--port", "0", "--text", text],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        raise RuntimeError("fake provider did not start: %r" % line)
    return p, int(m.group(1))


def start_customsd(env, config):
    log = open(os.path.join(env.work, "customsd.log"), "w+")
    p = subprocess.Popen([env.customsd, "--config", config], stdout=log, stderr=subprocess.STDOUT,
                         env=env.vars)
    ports = {}
    for _ in range(300):
        log.seek(0)
        content = log.read()
        for m in re.finditer(r"event=listening listener=(\S+) address=\S+ port=(\d+)", content):
            ports[m.group(1)] = int(m.group(2))
        m = re.search(r"event=admin_listening address=\S+ port=(\d+)", content)
        if m and ports:
            ports["admin"] = int(m.group(1))
            return p, ports, log
        if p.poll() is not None:
            break
        time.sleep(0.1)
    log.seek(0)
    raise RuntimeError("customsd did not start:\n" + log.read()[-3000:])


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def readme_walkthrough(env):
    """README.md, "Running customsd": the demo config, its curls, the auditor's
    two commands."""
    cfg_dir = os.path.join(env.work, "config")
    os.makedirs(cfg_dir)
    # The checkout layout the config's relative paths expect: config/ beside rules/.
    os.symlink(os.path.join(env.src, "rules"), os.path.join(env.work, "rules"))
    subprocess.run(["cp", "-r", os.path.join(env.src, "config", "demo-rules"), cfg_dir], check=True)
    r = run_shell(env, "setup", "customsctl keys gen --out config/state/keys >/dev/null")
    provider, provider_port = start_provider(env)
    env.procs.append(provider)
    config = open(os.path.join(env.src, "config", "customsd.yaml"), encoding="utf-8").read()
    for port, new in (("8091", str(provider_port)), ("8080", "0"), ("9090", "0")):
        if port not in config:
            fail("config/customsd.yaml: port %s (README, demo.sh) not found" % port)
        config = config.replace("127.0.0.1:%s" % port, "127.0.0.1:%s" % new).replace("port: %s" % port, "port: %s" % new)
    cfg_path = os.path.join(cfg_dir, "customsd.yaml")
    open(cfg_path, "w").write(config)
    customsd, ports, log = start_customsd(env, cfg_path)
    env.procs.append(customsd)
    env.log = log
    edge, admin = ports.get("edge"), ports["admin"]
    if edge is None:
        fail("config/customsd.yaml: no listener named edge")
        edge = list(v for k, v in ports.items() if k != "admin")[0]

    def ports_of(text):
        return text.replace("127.0.0.1:8080", "127.0.0.1:%d" % edge).replace(
            "127.0.0.1:9090", "127.0.0.1:%d" % admin).replace("build/release/", env.build + "/")

    # The curls and the auditor's commands, in the README's order.
    ran = {"stream": False, "block": False, "rules": False, "metrics": False, "verify": False, "show": False}
    for doc, at, text, lang in all_commands(env.src):
        if doc != "README.md" or lang != "sh":
            continue
        where = "README.md:%d" % at
        code, _ = strip_comment(text)
        if code.startswith("curl "):
            expected = block_after(env.src, doc, at)
            r = run_shell(env, where, ports_of(code))
            if expected:
                check_output_holds(where, expected, r.stdout)
            if "/chat/completions" in code:
                ran["stream"] = True
                if "[REDACTED:pi.phone]" not in r.stdout or "5678" in r.stdout:
                    fail("%s: the streamed answer was not redacted: %s" % (where, r.stdout[-600:]))
            elif "/anthropic/" in code:
                ran["block"] = True
                if " 451 " not in r.stdout.split("\n")[0]:
                    fail("%s: the resident ID was not refused with 451: %s" % (where, r.stdout[:300]))
                # "The same prompt to /openai-cn/ (a route processing in CN) passes."
                m = re.search(r"-d '([^']*)'", code)
                if m:
                    import json
                    body = json.loads(m.group(1))
                    oai = {"model": "demo", "messages": body["messages"]}
                    r2 = run_shell(env, where + " (to /openai-cn/)",
                                   "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/openai-cn/v1/chat/completions "
                                   "-H 'Content-Type: application/json' -d %s" % (edge, shlex.quote(json.dumps(oai))))
                    if r2.stdout != "200":
                        fail("%s: the same prompt to /openai-cn/ got %s, the README says it passes" % (where, r2.stdout))
            elif "/rules" in code:
                ran["rules"] = True
                if '"hash"' not in r.stdout and "hash" not in r.stdout:
                    fail("%s: /rules shows no rule-set hash: %s" % (where, r.stdout[:300]))
            elif "/metrics" in code:
                ran["metrics"] = True
                if "customs_flows_total" not in r.stdout and "customs_" not in r.stdout:
                    fail("%s: /metrics shows no customs_ metric" % where)
        elif "customsctl audit" in code:
            r = run_shell(env, where, ports_of(code))
            if "audit verify" in code:
                ran["verify"] = True
                if ": OK" not in r.stdout:
                    fail("%s: verify did not say OK: %s" % (where, r.stdout))
            elif "audit show" in code:
                ran["show"] = True
                if "block" not in r.stdout or "cn.pipl.sensitive.block" not in r.stdout:
                    fail("%s: show does not list the blocked flow: %s" % (where, r.stdout[-600:]))
    for what, done in ran.items():
        if not done:
            fail("README.md: the walkthrough's %s command was not found" % what)
    # "Ctrl-C drains and stops customsd": SIGINT, exit 0.
    code = stop(customsd, signal.SIGINT)
    if code != 0:
        fail("README.md: customsd exited %s after SIGINT" % code)
    stop(provider)
    return os.path.join(env.work, "config", "state")


def rules_walkthrough(env):
    doc = "docs/rules.md"
    blocks = fenced_blocks(os.path.join(env.src, doc))
    pack = [b for b in blocks if b[0] == "yaml" and any(l.startswith("schema: customs/v1") for l in b[2])]
    if not pack:
        fail("docs/rules.md: the quick-start pack was not found")
        return
    d = os.path.join(env.work, "rules-guide")
    os.makedirs(d)
    open(os.path.join(d, "acme.yaml"), "w").write("\n".join(pack[0][2]) + "\n")
    for prefix, check in (("customsctl rules check acme.yaml", lambda o: "acme.yaml" in o or "OK" in o or "ok" in o),
                          ("customsctl rules test acme.yaml", lambda o: o.rstrip().split("\n")[-1] == "2 passed, 0 failed"),
                          ("customsctl rules explain --rules acme.yaml", lambda o: "[REDACTED:pi.phone]" in o or "redact" in o)):
        c = find_command(env.src, doc, prefix)
        if c:
            code, _ = strip_comment(c[2])
            r = run_shell(env, "%s:%d" % (doc, c[1]), code, cwd=d)
            if not check(r.stdout):
                fail("%s:%d: unexpected output: %s" % (doc, c[1], r.stdout[-400:]))
    c = find_command(env.src, doc, "customsctl rules explain --rules rules --from CN")
    if c:
        expected = None
        for lang, first, body in blocks:
            if first == c[1]:
                expected = body[1:]
        r = run_shell(env, "%s:%d" % (doc, c[1]), c[2], cwd=env.src)
        if expected is None:
            fail("%s:%d: no output under the explain example" % (doc, c[1]))
        else:
            check_output_equal("%s:%d" % (doc, c[1]), expected, r.stdout)


def auditor_walkthrough(env, state):
    doc = "docs/auditor-guide.md"
    d = os.path.join(env.work, "auditor")
    os.makedirs(d)

    def cmd(prefix, expect_code=0, subst=(), check=None):
        c = find_command(env.src, doc, prefix)
        if not c:
            return None
        code, _ = strip_comment(c[2])
        for a, b in subst:
            if a not in code:
                fail("%s:%d: %r not in the command any more" % (doc, c[1], a))
            code = code.replace(a, b)
        r = run_shell(env, "%s:%d" % (doc, c[1]), code, expect_code=expect_code, cwd=d)
        if check and not check(r):
            fail("%s:%d: unexpected output of `%s`:\n  stdout: %s\n  stderr: %s" %
                 (doc, c[1], code, r.stdout[-800:], r.stderr[-400:]))
        return r

    # Section 1: keys gen, the files of the table and their modes.
    cmd("customsctl keys gen --out keys/edge-fra-1")
    modes = {"auditor.pub": None, "auditor.key": 0o600, "sealing.key": 0o600, "sealing.seed": 0o600,
             "signing.key": 0o600, "signing.pub": None}
    for name, mode in modes.items():
        p = os.path.join(d, "keys", "edge-fra-1", name)
        if not os.path.exists(p):
            fail("%s: keys gen made no %s" % (doc, name))
        elif mode is not None and stat.S_IMODE(os.stat(p).st_mode) != mode:
            fail("%s: %s is %o, the guide says %o" % (doc, name, stat.S_IMODE(os.stat(p).st_mode), mode))
    # The README walkthrough's trail and keys, under the guide's names.
    subprocess.run(["cp", os.path.join(state, "audit.db"), os.path.join(d, "audit.db")], check=True)
    for name in ("auditor.key", "sealing.seed", "signing.pub"):
        subprocess.run(["cp", "-p", os.path.join(state, "keys", name), d], check=True)
    os.makedirs(os.path.join(d, "checkpoints"))
    # Section 3 before 2: the held checkpoint the verify command names.
    cmd("customsctl audit checkpoint --db audit.db >")
    held = glob.glob(os.path.join(d, "checkpoints", "edge-fra-1-*.checkpoint"))
    if len(held) != 1 or os.path.getsize(held[0]) == 0:
        fail("%s: audit checkpoint wrote no checkpoint file" % doc)
    else:
        os.rename(held[0], os.path.join(d, "last.checkpoint"))
    cmd("customsctl audit verify --db audit.db --seed sealing.seed",
        check=lambda r: "audit.db: OK" in r.stdout and "held checkpoint: seq" in r.stdout
        and "signatures checked against the given --signer key" in r.stdout)
    # The blocked flow's id, to stand for the guide's 7f3c...
    r = run_shell(env, "setup", "customsctl audit show --db audit.db --action block --format csv", cwd=d)
    rows = [l for l in r.stdout.split("\n")[1:] if l.strip()]
    flow = rows[0].split(",")[4] if rows else ""
    if len(flow) < 8:
        fail("%s: no blocked flow in the walkthrough's trail" % doc)
        return
    # The shortest start (4 characters at least) that only this flow's id has,
    # as the guide's "7f3c..." is.
    r = run_shell(env, "setup", "customsctl audit show --db audit.db --format csv", cwd=d)
    ids = set(l.split(",")[4] for l in r.stdout.split("\n")[1:] if l.count(",") > 4)
    n = 4
    while sum(1 for i in ids if i.startswith(flow[:n])) > 1:
        n += 1
    prefix = flow[:n]
    cmd("customsctl audit show --db audit.db   ", check=lambda r: flow in r.stdout)
    cmd("customsctl audit show --db audit.db --key", subst=(("7f3c...", prefix),),
        check=lambda r: flow in r.stdout and "findings" in r.stdout)
    cmd("customsctl audit export --db audit.db --key auditor.key --since")
    cmd("customsctl audit report --db audit.db --by src,dst,month",
        check=lambda r: re.search(r"^CN\s+US\s+\S+\s+2\s+1\s+1\s", r.stdout, re.M) is not None)
    cmd("customsctl audit report --db audit.db --key auditor.key --by tenant,model,year --format csv",
        check=lambda r: r.stdout.startswith("tenant,model,year,flows,"))
    cmd("customsctl audit report --db audit.db --key auditor.key --since")
    page = os.path.join(d, "2026-11.html")
    if not os.path.exists(page) or "Verification passed" not in open(page, encoding="utf-8").read():
        fail("%s: the HTML report was not written or does not say the trail verified" % doc)
    c = find_command(env.src, doc, "customsctl audit volumes --db audit.db")
    if c:
        code, _ = strip_comment(c[2])
        code = re.sub(r"\s*\[[^\]]*\]", "", code)  # usage brackets: the command without them
        r = run_shell(env, "%s:%d" % (doc, c[1]), code, cwd=d)
        if not re.search(r"flows read, \d+ erased", r.stdout):
            fail("%s:%d: volumes printed no summary: %s" % (doc, c[1], r.stdout[-300:]))
    cmd("customsctl audit replay --db audit.db --key auditor.key --rules new-pack/",
        subst=(("new-pack/", os.path.join(env.src, "rules") + "/"), ("--since 2026-11-01", "--since 2026-01-01")),
        check=lambda r: "replay" in r.stdout.lower() or "flows" in r.stdout)
    os.makedirs(os.path.join(d, "etc-keys"))
    for name in ("auditor.pub", "sealing.key", "signing.key"):
        subprocess.run(["cp", "-p", os.path.join(state, "keys", name), os.path.join(d, "etc-keys")], check=True)
    cmd("customsctl audit erase --db audit.db --flow 7f3c...",
        subst=(("7f3c...", prefix), ("/etc/customs/keys", os.path.join(d, "etc-keys"))),
        check=lambda r: flow in r.stdout + r.stderr)
    r = run_shell(env, "after the erasure", "customsctl audit verify --db audit.db --seed sealing.seed "
                  "--signer signing.pub", cwd=d)
    if "erased payloads: " not in r.stdout or flow[:4] not in r.stdout:
        fail("%s: verify after the erasure does not report it: %s" % (doc, r.stdout))


def operator_walkthrough(env):
    doc = "docs/operator-guide.md"
    # "Configuration": the two errors it shows, from a config with an unknown
    # key in a route and a duration without its unit, checked as in its first
    # lines; positions are the file's own.
    c = find_command(env.src, doc, "customsd --config /etc/customs/customsd.yaml --check-config", first=True)
    blocks = fenced_blocks(os.path.join(env.src, doc))
    shown = [b for b in blocks if b[0] == "" and any("error: E_UNKNOWN_KEY: unknown key 'routes[0].retries'" in l
                                                    for l in b[2])]
    if c and shown:
        config = open(os.path.join(env.work, "config", "customsd.yaml"), encoding="utf-8").read()
        broken = re.sub(r"(prefix: /openai/,[^}]*)}", r"\1, retries: 3}", config, count=1)
        broken = re.sub(r"header_timeout: \S+", "header_timeout: 10 seconds", broken, count=1)
        open(os.path.join(env.work, "config", "broken.yaml"), "w").write(broken)
        code, _ = strip_comment(c[2])
        r = run_shell(env, "%s:%d" % (doc, c[1]), code.replace("/etc/customs/customsd.yaml", "broken.yaml"),
                      expect_code=1, cwd=os.path.join(env.work, "config"))
        for line in shown[0][2]:
            m = re.match(r"^customsd\.yaml:\d+:\d+: (.*)$", line)
            if not m:
                continue
            want = re.escape("broken.yaml:") + r"\d+:\d+: " + re.escape(m.group(1))
            if not re.search("^" + want + "$", r.stderr + r.stdout, re.M):
                fail("%s:%d: --check-config did not print the documented error %r:\n%s" %
                     (doc, shown[0][1], m.group(1), r.stderr + r.stdout))
    elif not shown:
        fail("%s: the example errors of \"Configuration\" were not found" % doc)
    c = find_command(env.src, doc, "customsctl ca gen --out /etc/customs/ca")
    if not c:
        return
    d = os.path.join(env.work, "ca")
    code, _ = strip_comment(c[2])
    run_shell(env, "%s:%d" % (doc, c[1]), code.replace("/etc/customs/ca", d))
    for name, mode in (("ca.pem", 0o644), ("ca.key", 0o600)):
        p = os.path.join(d, name)
        if not os.path.exists(p):
            fail("%s:%d: ca gen made no %s" % (doc, c[1], name))
        elif stat.S_IMODE(os.stat(p).st_mode) != mode:
            fail("%s:%d: %s is %o, the guide says %o" % (doc, c[1], name, stat.S_IMODE(os.stat(p).st_mode), mode))
    # "never overwritten"
    r = run_shell(env, "%s:%d (again)" % (doc, c[1]), code.replace("/etc/customs/ca", d), expect_code=None)
    if r.returncode == 0:
        fail("%s:%d: ca gen overwrote an existing CA" % (doc, c[1]))


SELF_TEST_BREAKS = [
    # (file, text, replacement, what the check must report)
    ("docs/auditor-guide.md", "--signer signing.pub \\", "--signers signing.pub \\",
     "option --signers is not in the command's --help"),
    ("README.md", "X-Customs-Rule: cn.pipl.sensitive.block\n", "X-Customs-Rule: cn.pipl.sensitive.blocked\n",
     "does not hold the documented line 'X-Customs-Rule: cn.pipl.sensitive.blocked'"),
    ("docs/performance.md", "# DURATION=8", "# DURATON=8", "bench/proxy/run.sh does not read DURATON"),
    ("docs/rules.md", "*******5678  -> redact", "*******5678  -> block", "differs from the documented one"),
    ("docs/auditor-guide.md", "customsctl audit erase --db", "customsctl audit purge --db",
     "expected one command starting with 'customsctl audit erase --db audit.db --flow 7f3c...'"),
    ("docs/operator-guide.md", '"250ms" (units ms, s, m, h)', '"250ms" (units: ms, s, m, h)',
     "--check-config did not print the documented error"),
    ("docs/operator-guide.md", "ca.key (0600)", "ca.key (0600)", None),  # unchanged: must pass
]


def self_test(argv):
    """Breaks copies of the docs one way at a time and fails unless each break
    is reported (and the unbroken copy passes)."""
    src = os.path.abspath(argv[1])
    bad = 0
    for doc, old, new, expect in SELF_TEST_BREAKS:
        with tempfile.TemporaryDirectory(prefix="customs-docs-self-") as copy:
            for name in os.listdir(src):
                if name in ("README.md", "docs"):
                    continue
                os.symlink(os.path.join(src, name), os.path.join(copy, name))
            subprocess.run(["cp", "-r", os.path.join(src, "docs"), os.path.join(src, "README.md"), copy], check=True)
            path = os.path.join(copy, doc)
            text = open(path, encoding="utf-8").read()
            if old not in text:
                print("SELF-TEST: %s no longer holds %r" % (doc, old), file=sys.stderr)
                bad += 1
                continue
            open(path, "w", encoding="utf-8").write(text.replace(old, new, 1))
            r = subprocess.run([sys.executable, os.path.abspath(__file__), copy] + argv[2:6],
                               capture_output=True, text=True, timeout=300)
            if expect is None:
                ok = r.returncode == 0
            else:
                ok = r.returncode == 1 and expect in r.stderr
            print("%s: %s -> %s" % ("ok" if ok else "MISSED", doc, expect or "passes"))
            if not ok:
                print(r.stderr[-2000:], file=sys.stderr)
                bad += 1
    return 1 if bad else 0


def main(argv):
    flags = [a for a in argv[1:] if a.startswith("--")]
    args = [argv[0]] + [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 6 or any(f not in ("--bench", "--self-test") for f in flags):
        print(__doc__.split("\n")[2], file=sys.stderr)
        return 2
    if "--self-test" in flags:
        return self_test(args)
    argv = args
    env = Env()
    env.src, env.build = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    env.customsd, env.customsctl, env.fake_provider = map(os.path.abspath, argv[3:6])
    bench = "--bench" in flags
    check_static(env.src, env.build, env.customsd, env.customsctl, bench)
    env.procs = []
    with tempfile.TemporaryDirectory(prefix="customs-docs-") as work:
        env.work = work
        bindir = os.path.join(work, "bin")
        os.makedirs(bindir)
        os.symlink(env.customsd, os.path.join(bindir, "customsd"))
        os.symlink(env.customsctl, os.path.join(bindir, "customsctl"))
        env.vars = dict(os.environ)
        env.vars["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        env.vars["CURL_HOME"] = work  # no user .curlrc
        try:
            state = readme_walkthrough(env)
            rules_walkthrough(env)
            auditor_walkthrough(env, state)
            operator_walkthrough(env)
        except Exception as e:  # a walkthrough that cannot go on
            fail("walkthrough stopped: %r" % (e,))
            if getattr(env, "log", None):
                env.log.seek(0)
                print(env.log.read()[-3000:], file=sys.stderr)
        finally:
            for p in env.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    if failures:
        print("%d failure(s)" % len(failures), file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
