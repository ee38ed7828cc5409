#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/<target>/seed-*, from tests/data/vectors.json
and the sample pushes of WeChat's message-push documentation (kept in
fuzz/seeds/protocol-samples.txt, so the corpus can be rebuilt offline), plus truncations of each.

Run from anywhere: python3 fuzz/make_seeds.py  (it replaces every seed-* file).
The input layouts are those of fuzz/src/lib.rs.
"""

import base64
import hashlib
import json
import pathlib
import re
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SAMPLES = FUZZ / "seeds" / "protocol-samples.txt"

# The layer target's flags (fuzz/src/lib.rs).
SIGN, SEAL, SEAL_JSON, SIGN_BODY, STRICT, KEEP_TIMESTAMP, CHUNKED, CONTENT_LENGTH = (
    1, 2, 4, 8, 16, 32, 64, 128)
# The layer target's method-byte bit for the multi-app layer.
MULTI_APP = 0x80
KEY_A = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
KEY_B = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def protocol_samples():
    """The sample pushes, from the committed copy; or, given a Markdown file as the first argument,
    the ```xml and ```json blocks of its "## 5. " section (which refreshes the copy)."""
    if len(sys.argv) > 1:
        spec = pathlib.Path(sys.argv[1]).read_text()
        section = spec[spec.index("## 5. "):spec.index("## 6. ")]
        blocks = re.findall(r"```(xml|json)\n(.*?)```", section, re.S)
        SAMPLES.parent.mkdir(parents=True, exist_ok=True)
        SAMPLES.write_text("".join(f"@@{kind}\n{text}" for kind, text in blocks))
    text = SAMPLES.read_text()
    return [(part[:part.index("\n")], part[part.index("\n") + 1:].encode())
            for part in text.split("@@")[1:]]


def truncations(data, n=4):
    """A few prefixes of data: quarters and one byte short."""
    cuts = {len(data) * i // n for i in range(1, n)} | {len(data) - 1}
    return [data[:c] for c in sorted(cuts) if 0 < c < len(data)]


class Corpus:
    def __init__(self):
        self.files = {}

    def add(self, target, data):
        if isinstance(data, str):
            data = data.encode()
        digest = hashlib.sha1(data).hexdigest()[:16]
        self.files[(target, f"seed-{digest}")] = data

    def write(self):
        for target in {t for t, _ in self.files}:
            d = FUZZ / "corpus" / target
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob("seed-*"):
                old.unlink()
        for (target, name), data in sorted(self.files.items()):
            (FUZZ / "corpus" / target / name).write_bytes(data)
        counts = {}
        for target, _ in self.files:
            counts[target] = counts.get(target, 0) + 1
        print(" ".join(f"{t}={n}" for t, n in sorted(counts.items())))


def main():
    v = json.loads((ROOT / "tests" / "data" / "vectors.json").read_text())
    c = Corpus()
    samples = protocol_samples()

    # Every (query, body) request in the vectors, and every Encrypt with its key and AppID.
    queries, bodies, encrypts, plaintexts = [], [], [], []
    for case in v["signature_cases"]:
        if "query" in case:
            queries.append(case["query"])
    wc = v["wecom_echostr_case"]
    queries.append(wc["query"])
    encrypts.append((wc["echostr"], wc["encoding_aes_key"], wc["receive_id"]))
    doc = v["official_doc_case"]
    queries.append(doc["query"])
    bodies.append(doc["request_body_safe"])
    plaintexts.append(("json", doc["plaintext"]))
    encrypts.append((doc["encrypt"], doc["encoding_aes_key"], doc["appid"]))
    for case in v["encrypt_cases"]:
        for fmt in ("xml", "json"):
            f = case[fmt]
            queries.append(f["query"])
            bodies += [f["request_body_safe"], f["request_body_compatible"]]
            plaintexts.append((fmt, f["plaintext"]))
            encrypts.append((f["encrypt"], case["encoding_aes_key"], case["appid"]))
    for case in v["reply_cases"]:
        encrypts.append((case["encrypt"], case["encoding_aes_key"], case["appid"]))
        for k in ("response_body_xml", "response_body_json"):
            if case.get(k):
                bodies.append(case[k])
    for case in v["negative_cases"]:
        if case.get("encrypt"):
            encrypts.append((case["encrypt"], case["encoding_aes_key"],
                             case.get("configured_appid") or case.get("appid")))
        if case.get("request_body_safe"):
            bodies.append(case["request_body_safe"])
    for kind, text in samples:
        plaintexts.append((kind, text.decode()))
    queries += [
        "signature=abc&timestamp=1714036504&nonce=1514711492&echostr=a%2Bb%2F%3D+c",
        "%73ignature=x&timestamp=1&nonce=%E4%BD%A0&encrypt_type=raw&x=1&x=2&&foo",
        "signature=a&signature=a&timestamp=1&nonce=2",
        "signature=a&timestamp=99999999999999999999&nonce=2&encrypt_type=des",
    ]

    # query
    for q in queries:
        c.add("query", q)
        for t in truncations(q.encode()):
            c.add("query", t)

    # xml / json: bodies and plaintexts by their first byte, with truncations
    docs = [b.encode() for b in bodies] + [p.encode() for _, p in plaintexts]
    docs += [b"\xef\xbb\xbf<xml><a>1</a></xml>", b"<!DOCTYPE xml><xml/>",
             b"<xml><a>&lt;&#x41;&#65;</a><b x='1'/></xml>", b"{\"a\":[1,{\"b\":null}],\"c\":1.50}"]
    for d in docs:
        target = "json" if d.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{" else "xml"
        c.add(target, d)
        for t in truncations(d):
            c.add(target, t)

    # decrypt
    for encrypt, key, appid in encrypts:
        mode = 0 if key == KEY_A else 4 if key == KEY_B else 0
        c.add("decrypt", bytes([mode]) + encrypt.encode())
        raw = base64.b64decode(encrypt)
        c.add("decrypt", bytes([mode | 1]) + raw)
        for t in truncations(encrypt.encode()):
            c.add("decrypt", bytes([mode]) + t)
    for case in v["encrypt_cases"]:
        mode = 0 if case["encoding_aes_key"] == KEY_A else 4
        for fmt in ("xml", "json"):
            if "padded_plaintext_hex" not in case[fmt]:
                continue
            padded = bytes.fromhex(case[fmt]["padded_plaintext_hex"])
            c.add("decrypt", bytes([mode | 2]) + padded)
            c.add("decrypt", bytes([mode | 2]) + padded[:-1])
            c.add("decrypt", bytes([mode | 3]) + bytes.fromhex(case["random_hex"])
                  + case[fmt]["plaintext"].encode())

    # layer: method, flags, query, "\n", body
    def req(method, flags, query, body=b""):
        if isinstance(query, str):
            query = query.encode()
        if isinstance(body, str):
            body = body.encode()
        if isinstance(method, str):
            method = method.encode()
        c.add("layer", method + bytes([flags]) + query + b"\n" + body)

    def multi(method, flags, path, query, body=b""):
        # The multi-app layer at /wechat/{path}: the path goes before the query's first '?'.
        req(bytes([ord(method) | MULTI_APP]), flags, path + "?" + query, body)

    case0 = v["encrypt_cases"][0]
    for fmt in ("xml", "json"):
        f = case0[fmt]
        req("P", 0, f["query"], f["request_body_safe"])
        req("P", 0, f["query"], f["request_body_compatible"])
        req("P", STRICT, f["query"], f["request_body_safe"])
        req("P", SIGN | SIGN_BODY, "nonce=7&encrypt_type=aes", f["request_body_safe"])
        for t in truncations(f["request_body_safe"].encode()):
            req("P", 0, f["query"], t)
    for q in queries:
        req("G", 0, q)
        req("P", 0, q)
        req("G", SIGN, q)
    req("G", SIGN, "nonce=1&echostr=hello%20world")
    req("G", SIGN | KEEP_TIMESTAMP, "timestamp=1714200300&nonce=1&echostr=edge")
    req("G", SIGN | KEEP_TIMESTAMP, "timestamp=1714200301&nonce=1&echostr=stale")
    req("U", SIGN, "nonce=1&echostr=1")
    req("H", SIGN, "nonce=1&echostr=1")
    for kind, text in plaintexts:
        seal = SEAL | (SEAL_JSON if kind == "json" else 0)
        req("P", SIGN, "nonce=1&openid=o1", text)
        req("P", SIGN | seal, "nonce=2", text)
        req("P", SIGN | seal | STRICT, "nonce=3", text)
        req("P", SIGN | seal | CHUNKED, "nonce=4", text)
        req("P", SIGN | CONTENT_LENGTH, "nonce=5", text)
        req("P", SIGN | STRICT, "nonce=6", text)
        for t in truncations(text.encode()):
            req("P", SIGN, "nonce=1", t)
    for b in bodies:
        req("P", SIGN | SIGN_BODY, "nonce=8&encrypt_type=aes", b)
    for kind, text in plaintexts[:2]:
        seal = SEAL | (SEAL_JSON if kind == "json" else 0)
        for path in ("main", "main/", "other", "nobody", "", "a/main", "ma%69n", "MAIN"):
            multi("P", SIGN | seal, path, "nonce=9", text)
        multi("P", SIGN, "main", "nonce=9", text)
        multi("P", SIGN | seal | STRICT, "main", "nonce=9", text)
    multi("G", SIGN, "main", "nonce=1&echostr=hello")
    multi("G", SIGN, "nobody", "nonce=1&echostr=hello")

    # layer, WeCom path: "W" + the same layout, against a WeCom endpoint (fuzz/src/lib.rs
    # wecom_layer). The platforms' vectors' decrypted documents, sealed for the corp.
    platforms = json.loads((ROOT / "tests" / "data" / "platforms.json").read_text())

    def wecom(method, flags, query, body=b""):
        req("W" + method, flags, query, body)

    wecom_docs = [platforms[n]["post"]["decrypted"] for n in ("v1", "v2", "v3")]
    wecom_docs.append('{"ToUserName":"ww1","FromUserName":"u","CreateTime":1,"MsgType":"text",'
                      '"Content":"hi","MsgId":7,"AgentID":1}')
    for doc in wecom_docs:
        wecom("P", SIGN | SEAL, "nonce=1", doc)
        wecom("P", SIGN | SEAL | SEAL_JSON, "nonce=2", doc)
        wecom("P", SIGN | SEAL | CHUNKED | STRICT, "nonce=3", doc)
        wecom("P", SEAL, "nonce=4&timestamp=1714200000", doc)
        wecom("P", SIGN, "nonce=5", doc)
        for t in truncations(doc.encode()):
            wecom("P", SIGN | SEAL, "nonce=6", t)
    wecom("G", SIGN | SEAL, "nonce=1", "1288432023552776189")
    wecom("G", SIGN | SEAL | KEEP_TIMESTAMP, "timestamp=1714200301&nonce=1", "5927782489442352469")
    wecom("G", SIGN, "nonce=1&echostr=plain")
    wecom("G", 0, "nonce=1&timestamp=1714200000&echostr=x&msg_signature=0")
    wecom("U", SIGN, "nonce=1")
    for n in ("v1", "v2", "v3"):
        body = platforms[n]["post"]["body"]
        wecom("P", SIGN | SIGN_BODY, "nonce=9", body)

    c.write()


if __name__ == "__main__":
    main()
