#!/usr/bin/env python3
"""Writes the scanner benchmark's corpus: CORPUS_DIR/corpus.txt (the messages,
concatenated) and CORPUS_DIR/corpus.idx (each message's length in bytes, one
per line), as bench/scanner/scanner_bench reads them.

The messages look like prompts and answers of AI traffic: English and Chinese
prose, code, JSON and tables, with identifiers sprinkled in at a low rate
(phone numbers, e-mail addresses, PRC resident IDs, card numbers, IBANs, US
SSNs), some valid under their check digits and some not, so that the scanner
does the work it does on real traffic: mostly text without a finding, some
candidates rejected by a validator, a few findings.

Usage: gen_corpus.py CORPUS_DIR [--seed N] [--messages N]
Deterministic for a given seed and count (Python's random.Random).
"""
import argparse
import os
import random

WORDS = (
    "the of and to in is that for it as with was on be by this are from or have an they which "
    "one you were all we when your can said there use each she do how their if will up other "
    "about out many then them these so some her would make like him into time has look two more "
    "write go see number no way could people my than first water been call who its now find long "
    "down day did get come made may part model prompt token stream request response policy data "
    "transfer border compliance customer account invoice contract schedule meeting office report"
).split()
HANZI = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
         "十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严")


def luhn_digit(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return str((10 - total % 10) % 10)


def resident_id(r):
    # GB 11643-1999: 17 digits, then an ISO 7064 MOD 11-2 check character.
    body = "%06d%04d%02d%02d%03d" % (r.choice([110101, 310104, 440305, 510107]), r.randint(1950, 2005),
                                     r.randint(1, 12), r.randint(1, 28), r.randint(0, 999))
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]
    if r.random() < 0.3:  # a wrong check character: a candidate the validator rejects
        check = "0" if check != "0" else "1"
    return body + check


def card(r):
    body = "4" + "".join(str(r.randint(0, 9)) for _ in range(14))
    d = luhn_digit(body)
    if r.random() < 0.3:
        d = str((int(d) + 1) % 10)
    return " ".join([(body + d)[i:i + 4] for i in range(0, 16, 4)])


def iban(r):
    bban = "%08d%010d" % (r.randint(0, 99999999), r.randint(0, 9999999999))
    rearranged = bban + "1314" + "00"  # DE = 13 14
    check = 98 - int(rearranged) % 97
    return "DE%02d%s" % (check, bban)


def identifier(r):
    kind = r.randrange(7)
    if kind == 0:
        return "1%d%d %04d %04d" % (r.choice([3, 5, 8]), r.randint(0, 9), r.randint(0, 9999), r.randint(0, 9999))
    if kind == 1:
        return "%s.%s@%s" % (r.choice(WORDS), r.choice(WORDS), r.choice(["example.com", "mail.example.cn", "corp.example.de"]))
    if kind == 2:
        return resident_id(r)
    if kind == 3:
        return card(r)
    if kind == 4:
        return iban(r)
    if kind == 5:
        return "%03d-%02d-%04d" % (r.randint(100, 665), r.randint(1, 99), r.randint(1, 9999))
    return "+49 30 %d %d" % (r.randint(1000, 9999), r.randint(1000, 9999))


def english(r, n):
    out = []
    for i in range(n):
        w = r.choice(WORDS)
        if i == 0 or out[-1].endswith("."):
            w = w.capitalize()
        out.append(w + ("." if r.random() < 0.08 else ("," if r.random() < 0.05 else "")))
    return " ".join(out)


def chinese(r, n):
    s = "".join(r.choice(HANZI) for _ in range(n))
    return "".join(c + ("。" if r.random() < 0.05 else "") for c in s)


def code(r):
    name = r.choice(WORDS)
    return ("```python\ndef %s(items):\n    total = 0\n    for item in items:\n        total += item.%s\n"
            "    return total  # %s\n```" % (name, r.choice(WORDS), english(r, 6)))


def table(r):
    rows = ["| %s | %d | %s |" % (r.choice(WORDS), r.randint(1, 10**6), r.choice(WORDS)) for _ in range(r.randint(2, 8))]
    return "| name | amount | note |\n| --- | --- | --- |\n" + "\n".join(rows)


def message(r):
    parts = []
    for _ in range(r.randint(1, 6)):
        x = r.random()
        if x < 0.5:
            parts.append(english(r, r.randint(20, 300)))
        elif x < 0.75:
            parts.append(chinese(r, r.randint(20, 300)))
        elif x < 0.88:
            parts.append(code(r))
        else:
            parts.append(table(r))
        if r.random() < 0.12:
            parts.append(r.choice(["Call me on", "联系电话", "My ID is", "身份证号", "Card:", "IBAN", "SSN", "E-mail"]) +
                         " " + identifier(r))
    return "\n\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--messages", type=int, default=6000)
    a = ap.parse_args()
    r = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    total = 0
    with open(os.path.join(a.dir, "corpus.txt"), "wb") as txt, open(os.path.join(a.dir, "corpus.idx"), "w") as idx:
        for _ in range(a.messages):
            m = message(r).encode("utf-8")
            txt.write(m)
            idx.write("%d\n" % len(m))
            total += len(m)
    print("gen_corpus: %d messages, %.1f MB, seed %d, in %s" % (a.messages, total / 1e6, a.seed, a.dir))


if __name__ == "__main__":
    main()
