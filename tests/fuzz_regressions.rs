//! The fuzz harnesses (fuzz/src/lib.rs, included as is) run as plain tests, through the same
//! oracles the fuzzers check: every `seed-*` file of fuzz/corpus/<target>/ (the committed seed
//! corpus that fuzz/make_seeds.py writes), and each input that made a fuzzer fail, as its own
//! test at the end of this file. See fuzz/README.md.
//!
//! Not replayed: the inputs libFuzzer adds to a corpus directory while it runs (named by
//! their SHA-1, git-ignored, on the machine that ran it only). Those are inputs that reached
//! new code, not failures; any other file in a corpus directory fails the replay, so that
//! nothing committed there is skipped unnoticed.

#[allow(unreachable_pub, dead_code, missing_docs)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

use http::StatusCode;

/// Runs `check` on every `seed-*` file of fuzz/corpus/<target>; returns how many there were.
/// Panics on a file that is neither a seed nor one of libFuzzer's SHA-1-named corpus inputs.
fn replay(target: &str, mut check: impl FnMut(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with("seed-") {
                return true;
            }
            let libfuzzer_input = name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
            assert!(
                libfuzzer_input,
                "{}: neither a seed-* file nor a libFuzzer corpus input; \
                 a fuzzer's failing input belongs in a test of its own",
                p.display()
            );
            false
        })
        .collect();
    paths.sort();
    for path in paths {
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(result.is_ok(), "{} failed", path.display());
        n += 1;
    }
    n
}

#[test]
fn query_seeds() {
    assert!(replay("query", harness::query) > 10);
}

#[test]
fn xml_seeds() {
    assert!(replay("xml", harness::xml) > 10);
}

#[test]
fn json_seeds() {
    assert!(replay("json", harness::json) > 10);
}

#[test]
fn decrypt_seeds() {
    assert!(replay("decrypt", harness::decrypt) > 10);
}

#[test]
fn layer_seeds_reach_the_handler() {
    let mut called = 0;
    let n = replay("layer", |data| {
        if let Some((_, true)) = harness::layer(data) {
            called += 1;
        }
    });
    assert!(n > 10);
    // The signed and sealed seeds get through; the fuzzer starts past the checks.
    assert!(
        called * 4 > n,
        "only {called} of {n} seeds reached the handler"
    );
}

/// A signed, sealed push built by the layer target's flags reaches the handler, and the same
/// request unsigned does not.
#[test]
fn layer_harness_flags() {
    let text = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName>\
                <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content></xml>";
    let input = |method: u8, flags: u8, query: &str| {
        let mut v = vec![method, flags];
        v.extend_from_slice(query.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(text.as_bytes());
        v
    };
    let sealed = harness::SIGN | harness::SEAL;
    assert_eq!(
        harness::layer(&input(b'P', sealed, "nonce=1")),
        Some((StatusCode::OK, true))
    );
    assert_eq!(
        harness::layer(&input(b'P', sealed | harness::STRICT, "nonce=1")),
        Some((StatusCode::OK, true))
    );
    // A JSON envelope around an XML plaintext: the plaintext is read as JSON.
    assert_eq!(
        harness::layer(&input(b'P', sealed | harness::SEAL_JSON, "nonce=1")),
        Some((StatusCode::BAD_REQUEST, false))
    );
    assert_eq!(
        harness::layer(&input(b'P', harness::SIGN, "nonce=1")),
        Some((StatusCode::OK, true))
    );
    assert_eq!(
        harness::layer(&input(b'P', harness::SIGN | harness::STRICT, "nonce=1")),
        Some((StatusCode::UNAUTHORIZED, false))
    );
    assert_eq!(
        harness::layer(&input(b'P', harness::SEAL, "nonce=1&timestamp=1714200000")),
        Some((StatusCode::UNAUTHORIZED, false))
    );
    assert_eq!(
        harness::layer(&input(b'G', harness::SIGN, "nonce=1&echostr=x")),
        Some((StatusCode::OK, false))
    );
    assert_eq!(
        harness::layer(&input(b'U', harness::SIGN, "nonce=1")),
        Some((StatusCode::METHOD_NOT_ALLOWED, false))
    );
    // The multi-app layer: `main` has the harness's keys, `other` has others, nothing else is
    // configured.
    let multi = b'P' | harness::MULTI_APP;
    assert_eq!(
        harness::layer(&input(multi, sealed, "main?nonce=1")),
        Some((StatusCode::OK, true))
    );
    assert_eq!(
        harness::layer(&input(multi, sealed, "nonce=1")),
        Some((StatusCode::OK, true)),
        "no path: main"
    );
    assert_eq!(
        harness::layer(&input(multi, sealed, "other?nonce=1")),
        Some((StatusCode::UNAUTHORIZED, false))
    );
    assert_eq!(
        harness::layer(&input(multi, sealed, "nobody?nonce=1")),
        Some((StatusCode::NOT_FOUND, false))
    );
    assert_eq!(
        harness::layer(&input(
            b'G' | harness::MULTI_APP,
            harness::SIGN,
            "main?nonce=1&echostr=x"
        )),
        Some((StatusCode::OK, false))
    );
}

/// The layer target's WeCom path (inputs starting with `W`): a signed, sealed push and
/// handshake get through, the same unsigned do not.
#[test]
fn layer_wecom_harness_flags() {
    let text = "<xml><ToUserName>ww1</ToUserName><FromUserName>u</FromUserName>\
                <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content>\
                <AgentID>1</AgentID></xml>";
    let input = |method: u8, flags: u8, query: &str, body: &str| {
        let mut v = vec![b'W', method, flags];
        v.extend_from_slice(query.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(body.as_bytes());
        v
    };
    let sealed = harness::SIGN | harness::SEAL;
    for flags in [
        sealed,
        sealed | harness::SEAL_JSON,
        sealed | harness::CHUNKED,
    ] {
        assert_eq!(
            harness::layer(&input(b'P', flags, "nonce=1", text)),
            Some((StatusCode::OK, true)),
            "{flags}"
        );
    }
    assert_eq!(
        harness::layer(&input(
            b'P',
            harness::SEAL,
            "nonce=1&timestamp=1714200000",
            text
        )),
        Some((StatusCode::UNAUTHORIZED, false))
    );
    // WeCom has no plaintext mode.
    assert_eq!(
        harness::layer(&input(b'P', harness::SIGN, "nonce=1", text)),
        Some((StatusCode::BAD_REQUEST, false))
    );
    assert_eq!(
        harness::layer(&input(b'G', sealed, "nonce=1", "1288432023552776189")),
        Some((StatusCode::OK, false))
    );
    assert_eq!(
        harness::layer(&input(b'G', harness::SIGN, "nonce=1&echostr=plain", "")),
        Some((StatusCode::BAD_REQUEST, false))
    );
}

#[test]
fn layer_wecom_seeds_reach_the_handler() {
    let mut wecom = 0;
    let mut called = 0;
    replay("layer", |data| {
        if data.first() == Some(&b'W') {
            wecom += 1;
            if let Some((_, true)) = harness::layer(data) {
                called += 1;
            }
        }
    });
    assert!(wecom > 20, "{wecom} WeCom seeds");
    // Most WeCom seeds are truncations; every sealed one that fits the limit gets through.
    assert!(
        called * 5 > wecom,
        "only {called} of {wecom} WeCom seeds reached the handler"
    );
}

// Inputs that made a fuzzer fail go below, one test each (the input, through the same
// harness).

/// The WeCom path's first run: a `#` in the fuzzed query starts the URI's fragment, so the
/// endpoint never saw the `echostr` and `msg_signature` the harness appended after it, and the
/// harness's own oracle called the refusal a lost handshake. The harness now reads the query
/// back from the URI, as the MP/OA path always did. (A harness bug, not the crate's.)
#[test]
fn wecom_query_with_a_fragment() {
    let data = b"WGG#timestamp=1714200301&nonce=1\n5927FromUserName23#timestamp=1714200301&nonce=1\n5927FromUserName235\x12469";
    assert_eq!(
        harness::layer(data),
        Some((StatusCode::UNAUTHORIZED, false))
    );
}

/// A WeCom handshake whose query also carries `signature` more than once (CI's fuzz smoke,
/// 2026-12-08): WeCom signs with `msg_signature` and sends no `signature`, yet the query parser
/// refused the repeated parameter (400 "query parameter signature appears more than once"),
/// so a handshake the harness sealed and signed correctly was lost. A WeCom query now ignores
/// `signature` like any parameter no check reads. (The crate's bug.)
#[test]
fn wecom_handshake_with_a_repeated_signature_parameter() {
    let data = b"WG\x03n\x8dsignature=a&timestampig1714\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xecn\x8dsigna@ture=a&timesta,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,&signature=a&times,,,,,,,,,,,,,,,,,,,,,,,&signature=a&timestampmpig171420signature=\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec&\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xec\xeca&timestamp\xa91&nonce=D40UMcgem5VI\xff\xffu9";
    assert_eq!(harness::layer(data), Some((StatusCode::OK, false)));
}

/// A sealed WeCom handshake whose fuzzed query had a `#` before the harness's own parameters
/// (a longer local run of 2026-12-08): the URI's fragment cut off `echostr` and
/// `msg_signature`, the endpoint rightly answered 401, and the harness's "never lost" oracle
/// called that a lost handshake. The oracle now asks for a query that still carries what the
/// harness appended. (A harness bug, not the crate's.)
#[test]
fn wecom_sealed_handshake_cut_by_a_fragment() {
    let data = b"WG#timet41a17s270002&nonce200000000000000814bed2d6d69ac59e18c920&timestamp=1714200000&nonce=846135702&openid=o9AC-bXrb#NODIiE3bGY&en000854639383";
    assert_eq!(
        harness::layer(data),
        Some((StatusCode::UNAUTHORIZED, false))
    );
}
