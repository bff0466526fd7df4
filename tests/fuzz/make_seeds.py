#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (corpus/<target>/seed-*) from the
project's fixtures: request and response bodies, SSE streams, rule packs,
configs. Each file is the exact input the target reads (see the comment at the
top of each target for its layout). Inputs saved from crashes
(corpus/<target>/regress-*) are not touched. Run it when a fixture changes:

    python3 tests/fuzz/make_seeds.py
"""
import os
import struct
import sys
from pathlib import Path

import yaml

here = Path(__file__).resolve().parent
root = here.parent.parent
bodies = here / "bodies"          # request and response bodies (JSON)
streams = root / "tests/daemon/dialect_fixtures"


def write(target, name, data):
    d = here / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / ("seed-" + name)).write_bytes(data)


def clear(target):
    d = here / "corpus" / target
    if d.is_dir():
        for f in d.glob("seed-*"):
            f.unlink()


def body(n):
    return (bodies / ("%s.json" % n)).read_bytes()


def sse(n):
    return (streams / n).read_bytes()


for t in ["fuzz_sse", "fuzz_dialect_request", "fuzz_dialect_response", "fuzz_dialect_stream",
          "fuzz_dialect_rewrite", "fuzz_stream_guard", "fuzz_config", "fuzz_rules_load", "fuzz_policy_stream",
          "fuzz_audit_record", "fuzz_audit_verify"]:
    clear(t)

# fuzz_dialect_request: byte 0 picks the path (index into its table; past it,
# 14/15/16 = openai/anthropic/gemini with the path on the first line).
request_seeds = {
    "openai_chat_full": (0, "openai_chat_full"), "openai_chat_function_call": (0, "openai_chat_function_call"),
    "openai_chat_video": (0, "openai_chat_video"), "openai_chat_text_part": (0, "openai_chat_text_part"),
    "openai_chat_object_arguments": (0, "openai_chat_object_arguments"),
    "openai_chat_deployment": (12, "openai_chat_full"),
    "openai_responses_full": (1, "openai_responses_full"), "openai_responses_computer": (1, "openai_responses_computer"),
    "openai_responses_video": (1, "openai_responses_video"), "openai_embeddings": (2, "openai_embeddings"),
    "anthropic_messages_full": (3, "anthropic_messages_full"), "anthropic_messages_short": (3, "anthropic_messages_short"),
    "anthropic_count_tokens": (4, "anthropic_messages_short"), "anthropic_video": (3, "anthropic_video"),
    "gemini_generate_full": (5, "gemini_generate_full"), "gemini_stream_sse": (6, "gemini_generate_full"),
    "gemini_snake_case": (5, "gemini_snake_case"), "gemini_stream_array": (11, "gemini_snake_case"),
    "gemini_count_tokens": (7, "gemini_count_tokens"), "gemini_embed": (10, "gemini_embed"),
    "gemini_batch_embed": (8, "gemini_batch_embed"), "gemini_video_metadata": (5, "gemini_video_metadata"),
}
for name, (sel, b) in request_seeds.items():
    write("fuzz_dialect_request", name, bytes([sel]) + body(b))
write("fuzz_dialect_request", "openai_models", bytes([9]))
write("fuzz_dialect_request", "path_openai", b"\x0e/v1/chat/completions\n" + body("openai_chat_video"))
write("fuzz_dialect_request", "path_gemini_tuned",
      b"\x10/v1beta/tunedModels/x:streamGenerateContent?key=k&alt=sse\n" + body("gemini_snake_case"))

# fuzz_dialect_response: byte 0 picks the endpoint.
response_seeds = {
    "openai_chat": (0, "openai_chat_response"), "openai_responses": (1, "openai_responses_response"),
    "openai_embeddings": (2, "openai_embeddings_response"), "anthropic_messages": (3, "anthropic_response"),
    "gemini_generate": (4, "gemini_response"), "gemini_stream_array": (5, "gemini_stream_array_response"),
    "openai_error": (0, "openai_error"), "anthropic_error": (3, "anthropic_error"),
}
for name, (sel, b) in response_seeds.items():
    write("fuzz_dialect_response", name, bytes([sel]) + body(b))
write("fuzz_dialect_response", "anthropic_count_tokens", b"\x06" + b'{"input_tokens":2095}')
write("fuzz_dialect_response", "gemini_count_tokens",
      b"\x07" + b'{"totalTokens":31,"cachedContentTokenCount":0,"promptTokensDetails":[{"modality":"TEXT","tokenCount":31}]}')
write("fuzz_dialect_response", "gemini_embed", b"\x08" + b'{"embedding":{"values":[0.013168523,-0.008711934]}}')
write("fuzz_dialect_response", "gemini_batch_embed", b"\x09" + b'{"embeddings":[{"values":[0.1]},{"values":[0.2]}]}')
write("fuzz_dialect_response", "openai_models",
      b"\x0a" + b'{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1686935002,"owned_by":"openai"}]}')

# fuzz_dialect_stream: byte 0 picks the codec.
stream_seeds = {
    "openai_chat_text": (0, "openai_chat_text.sse"), "openai_chat_tools": (0, "openai_chat_tools.sse"),
    "openai_responses": (1, "openai_responses.sse"), "anthropic_messages": (2, "anthropic_messages.sse"),
    "gemini_stream": (3, "gemini_stream.sse"), "gemini_function_call": (3, "gemini_function_call.sse"),
}
for name, (sel, f) in stream_seeds.items():
    write("fuzz_dialect_stream", name, bytes([sel]) + sse(f))

# fuzz_dialect_rewrite: byte 0 picks requests (0-9), responses (10-15) or
# streams (16-19); byte 1 seeds the replacements.
rewrite_seeds = {
    "request_openai_chat": (0, body("openai_chat_full")), "request_openai_responses": (1, body("openai_responses_full")),
    "request_openai_embeddings": (2, body("openai_embeddings")), "request_anthropic": (3, body("anthropic_messages_full")),
    "request_gemini": (5, body("gemini_generate_full")), "request_gemini_embed": (8, body("gemini_embed")),
    "request_gemini_batch_embed": (9, body("gemini_batch_embed")),
    "response_openai_chat": (10, body("openai_chat_response")),
    "response_openai_responses": (11, body("openai_responses_response")),
    "response_anthropic": (13, body("anthropic_response")), "response_gemini": (14, body("gemini_response")),
    "response_gemini_array": (15, body("gemini_stream_array_response")),
    "stream_openai_chat": (16, sse("openai_chat_tools.sse")), "stream_openai_responses": (17, sse("openai_responses.sse")),
    "stream_anthropic": (18, sse("anthropic_messages.sse")), "stream_gemini": (19, sse("gemini_function_call.sse")),
}
for i, (name, (sel, data)) in enumerate(rewrite_seeds.items()):
    write("fuzz_dialect_rewrite", name, bytes([sel, 0x35 + 7 * i]) + data)

# fuzz_stream_guard: byte 0 picks the codec, byte 1 the flow (0: CN -> US,
# tenant demo, whose answers have phone numbers redacted), byte 2 seeds the
# pieces.
guard_seeds = {
    "openai_chat_text": (0, 0, "openai_chat_text.sse"), "openai_chat_tools": (0, 0, "openai_chat_tools.sse"),
    "openai_chat_text_de": (0, 2, "openai_chat_text.sse"),
    "openai_responses": (1, 0, "openai_responses.sse"), "anthropic_messages": (2, 0, "anthropic_messages.sse"),
    "gemini_stream": (3, 0, "gemini_stream.sse"), "gemini_function_call": (3, 0, "gemini_function_call.sse"),
}
for i, (name, (sel, fl, f)) in enumerate(guard_seeds.items()):
    write("fuzz_stream_guard", name, bytes([sel, fl, 11 * i + 1]) + sse(f))

# fuzz_sse: byte 0 seeds the piece sizes, byte 1 picks the event size limit.
for i, f in enumerate(sorted(os.listdir(streams))):
    if f.endswith(".sse"):
        write("fuzz_sse", f[:-4], bytes([i * 37 % 256, 3]) + sse(f))
write("fuzz_sse", "line_ends", bytes([0, 3]) +
      b"\xef\xbb\xbfdata: a\r\ndata:b\r\rid: 1\nretry: 250\n: keep-alive\n\nevent: x\r\ndata\r\n\r\nid: a\x00b\ndata: t")
write("fuzz_sse", "too_large", bytes([1, 0]) + b"data: 0123456789abcdef0123456789\n\n")
write("fuzz_sse", "cr_split", bytes([2, 0]) + b"data: 0123456789\r\n\r\n")

# fuzz_config: the config bytes; paths inside the scratch folder the target makes.
write("fuzz_config", "minimal", """version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: 8080}
routes:
  - prefix: /openai/
    upstream: https://api.openai.com
    dialect: openai
    jurisdiction: US
""")
write("fuzz_config", "full", """version: 1
listeners:
  - name: edge
    address: 127.0.0.1
    port: 8080
    default_source: {jurisdiction: CN, tenant: demo}
  - name: tls
    address: "::1"
    port: 0
    tls: {cert: server.pem, key: server.key, client_ca: ca.pem}
admin: {address: 127.0.0.1, port: 9090}
routes:
  - {prefix: /openai/,    upstream: "http://127.0.0.1:8091", dialect: openai,    jurisdiction: US}
  - {prefix: /anthropic/, upstream: "https://api.anthropic.com/base/", dialect: anthropic, jurisdiction: US, ca_bundle: ca.pem}
  - {prefix: /gemini/,    upstream: "https://[::1]:8443", dialect: gemini,    jurisdiction: US}
sources:
  - {cidr: 10.20.0.0/16, jurisdiction: CN, tenant: acme}
  - {client_cert_subject: "CN=bank-gw,O=Bank,C=DE", jurisdiction: DE, tenant: bank}
trusted_proxies: [127.0.0.1/32, "::1/128"]
rules: [rules/, rules/pack.yaml]
audit:
  path: state/audit.db
  auditor_keys: [keys/auditor.pub]
  sealing_key: keys/sealing.key
  signing_key: keys/signing.key
  content: full
  on_failure: refuse
  epoch_records: 100000
  epoch_duration: 1h
  commit_records: 512
  commit_interval: 2ms
  queue_capacity: 65536
  index_fields: [route, src, dst, tenant, action, rules, rule_set_hash, tokens]
unscannable: block
limits:
  header_bytes: 16KiB
  request_body_bytes: 16MiB
  sse_event_bytes: 1MiB
  connections: 10000
  header_timeout: 10s
  idle_timeout: 60s
  upstream_connect_timeout: 5s
  upstream_first_byte_timeout: 5m
  stream_gap_timeout: 2m
  flow_timeout: 30m
threads: 0
drain_timeout: 30s
log: {level: info, flows: true}
""")
write("fuzz_config", "errors", """version: 2
listeners:
  - {name: edge, address: 999.0.0.1, port: 70000, extra: 1}
  - {name: edge, address: 127.0.0.1, port: 8080}
routes:
  - {prefix: openai, upstream: "ftp://x", dialect: cohere, jurisdiction: usa}
limits: {header_bytes: 16QiB, idle_timeout: 10 parsecs}
audit: {path: "", content: some}
""")

# fuzz_rules_load: rule files as they are.
for p in sorted((root / "rules").glob("*.yaml")) + sorted((root / "config/demo-rules").glob("*.yaml")):
    write("fuzz_rules_load", p.stem, p.read_bytes())
for p in sorted((root / "tests/policy/data").glob("*/*.yaml")):
    write("fuzz_rules_load", p.parent.name + "_" + p.stem, p.read_bytes())

# fuzz_policy_stream: byte 0 seeds the pieces, byte 1 picks the flow (low bits)
# and the rule set (high bit: the property pack); texts of the packs' tests.
n = 0
for pack, high in [(root / "rules", 0), (root / "tests/policy/data/property", 0x80)]:
    for p in sorted(pack.glob("*.yaml")):
        doc = yaml.safe_load(p.read_text())
        for t in (doc.get("tests") or [])[:6]:
            text = t.get("input") or "".join(t.get("chunks") or [])
            if not text:
                continue
            write("fuzz_policy_stream", "%s_%s" % (p.stem, t["id"]), bytes([n * 53 % 256, high | (n % 8)]) + text.encode())
            n += 1

# fuzz_audit_record: byte 0 picks the decoder.
signer = bytes(range(32))
write("fuzz_audit_record", "epoch_start",
      b"\x00" + b"\x01" + signer + struct.pack("<H", 2) + (bytes([7] * 32) + bytes([9] * 80)) * 2)
write("fuzz_audit_record", "erasure",
      b"\x01" + b"\x01" + struct.pack("<I", 15) + b"erasure request" + struct.pack("<I", 2) + struct.pack("<QQ", 4, 5))
write("fuzz_audit_record", "checkpoint", b"\x02" + b"""customs audit checkpoint v1
seq: 12
epoch: 2
time: 2026-11-28T10:51:39.123456Z
time_us: 1795863099123456
head: """ + b"ab" * 32 + b"""
signer: """ + b"01" * 32 + b"""
signature: """ + b"cd" * 64 + b"\n")
write("fuzz_audit_record", "time_full", b"\x03" + b"2026-11-28T10:51:39.123456Z")
write("fuzz_audit_record", "time_day", b"\x03" + b"2024-02-29")
write("fuzz_audit_record", "rules", b"\x04" + b"cn.pipl.block,,eu.gdpr.tag,")

# fuzz_audit_verify: byte 0 even = SQL edits, odd = raw bytes.
write("fuzz_audit_verify", "unedited", b"\x00")
write("fuzz_audit_verify", "update_route", b"\x00" + bytes([0, 3, 5, 3, 4]) + b"/ai/")
write("fuzz_audit_verify", "delete_record", b"\x00" + bytes([1, 6]))
write("fuzz_audit_verify", "swap_records", b"\x00" + bytes([2, 4, 20, 2, 3, 4]))
write("fuzz_audit_verify", "null_payload", b"\x00" + bytes([0, 2, 15, 0]))
write("fuzz_audit_verify", "checkpoint_reason", b"\x00" + bytes([4, 0, 6, 3, 3]) + b"odd")
write("fuzz_audit_verify", "delete_checkpoint", b"\x00" + bytes([5, 0]))
write("fuzz_audit_verify", "copy_column", b"\x00" + bytes([6, 3, 7, 11]))
write("fuzz_audit_verify", "raw_bytes", b"\x01" + bytes([0x80, 0x00, 0x41, 0xf0, 0x10, 0x00]))
# fuzz_volume_journal: journal entries of the local counter fallback.
def journal_op(key, now, expire_before, expires_at, members):
    return (struct.pack("<I", len(key)) + key + struct.pack("<qqq", now, expire_before, expires_at) +
            struct.pack("<I", len(members)) + b"".join(members))
write("fuzz_volume_journal", "one_op",
      journal_op(b"cn.cac.personal|tenant=acme|2026", 1796000000, 0, 1798732800, [bytes([1] * 16), bytes([2] * 16)]))
write("fuzz_volume_journal", "two_ops",
      journal_op(b"us.bulk|dst=CN|rolling-12m", 1796000000, 1764464000, 1798678400, [bytes([3] * 16)]) +
      journal_op(b"k", -1, 0, 0, []))
write("fuzz_volume_journal", "short", journal_op(b"k", 1, 2, 3, [bytes([4] * 16)])[:-3])
print("seeds written", file=sys.stderr)
