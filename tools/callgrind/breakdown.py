"""Per-request user-space instructions from two callgrind runs (N1 and N2 requests) of the floor
and of the subject: a table by part (crate or module, from the debug line tables when the binary
has them, else from the function's name), and the subject's top functions.

usage: breakdown.py OUT_DIR WORKLOAD N1 N2"""
import re, subprocess, sys

out, w, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
LINE = re.compile(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*?)(?: \[.*\])?$")
# (part, pattern on "file:function"); first match wins
PARTS = [
    ("SHA-1 (signature, msg_signature)", r"sha1"),
    ("AES-256-CBC", r"/aes-|/cbc-|cipher|inout|aes::"),
    ("base64", r"base64|vsimd"),
    ("crate: XML/JSON codec (with serde_json)", r"src/protocol/codec|wechat_push::protocol::codec|serde_json"),
    ("crate: typed Message", r"src/protocol/message|wechat_push::protocol::message"),
    ("crate: reply writing and sealing", r"src/protocol/reply|wechat_push::protocol::reply|random"),
    ("crate: query, signature compare, hex", r"src/protocol/(query|signature|hex)|protocol::(query|signature|hex)"),
    ("crate: endpoint, crypto envelope", r"src/protocol/|wechat_push::protocol"),
    ("crate: middleware (future, response)", r"src/middleware|wechat_push::middleware"),
    ("memchr", r"memchr"),
    ("UTF-8 validation", r"str/validations|from_utf8"),
    ("malloc/free", r"malloc|_int_free|free|unlink_chunk|__rust_alloc|__rust_dealloc|alloc/src/alloc"),
    ("memcpy/memmove/memcmp/memset", r"mem(cpy|move|cmp|set)"),
    ("hyper, http, httparse", r"hyper|/http-|http::|httparse"),
    ("tokio, mio", r"tokio|mio"),
]


def load(name, n):
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", f"{out}/{name}.{w}.{n}"],
                          capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m and "PROGRAM TOTALS" not in line:
            costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return costs


def per_request(name):
    a, b = load(name, n1), load(name, n2)
    return {k: (b.get(k, 0) - a.get(k, 0)) / (n2 - n1) for k in set(a) | set(b)}


def part(key):
    for label, pattern in PARTS:
        if re.search(pattern, key):
            return label
    return "other (std inlined into the above, the runtime, the example)"


floor, subject = per_request("floor"), per_request("subject")
parts = {}
for which, costs in ((0, floor), (1, subject)):
    for key, cost in costs.items():
        parts.setdefault(part(key), [0, 0])[which] += cost
print(f"\n#### {w}: user-space instructions per request (callgrind, {n2 - n1} requests)\n")
print("| part | floor | subject | subject − floor |\n| --- | ---: | ---: | ---: |")
for label, (f, s) in sorted(parts.items(), key=lambda kv: -kv[1][1]):
    if abs(s) >= 50 or abs(f) >= 50:
        print(f"| {label} | {f:,.0f} | {s:,.0f} | {s - f:+,.0f} |")
tf, ts = sum(floor.values()), sum(subject.values())
print(f"| **total** | **{tf:,.0f}** | **{ts:,.0f}** | **{ts - tf:+,.0f}** |")
by_fn = {}
for key, cost in subject.items():
    fn = key.split(":", 1)[-1] if not key.startswith("???") else key[4:]
    src = re.sub(r".*/(registry/src/[^/]+/|library/|/work/[^/]+/)", "", key.split(":", 1)[0])
    by_fn[(src, fn)] = by_fn.get((src, fn), 0) + cost
print(f"\nSubject's top 15 (source file of the code : function it was inlined into):\n")
print("| instructions | where |\n| ---: | --- |")
for (src, fn), cost in sorted(by_fn.items(), key=lambda kv: -kv[1])[:15]:
    print(f"| {cost:,.0f} | `{src}`: `{fn[:90]}` |")
