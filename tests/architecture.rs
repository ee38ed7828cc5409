//! ARCHITECTURE.md's import rules, checked on the source: the protocol core stays sans-IO, the
//! retry options and the client never reach into the middleware, the Redis stores implement
//! the store traits and nothing more.
//!
//! Each file is read as tokens (comments and literals dropped). Every `use` tree is expanded
//! into its paths (nested braces, `self`, globs, renames), every other path in the code
//! (`tokio::spawn`, `crate::x::y`) is taken as written, and each is resolved to where it
//! leads: `super::`/`self::`/child-module paths against the file's module, and the crate
//! root's own re-exports (`crate::dedupe` is `crate::retry::dedupe`) against `lib.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// The tokens of Rust source that matter for paths: identifiers, `::`, braces, commas,
/// semicolons and `*`. Comments, strings and characters are dropped.
fn tokens(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'#') | Some(b'"')) && {
            let mut j = i + 1;
            while b.get(j) == Some(&b'#') {
                j += 1;
            }
            b.get(j) == Some(&b'"')
        } {
            // A raw string: r#"…"#, closed by a quote and as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"'
                    && b[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == b'#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push(Tok::Other);
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Tok::Other);
        } else if c == b'\'' {
            // A character literal ('a', '\n', '\u{..}', a multi-byte 'é') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 3; // the quote, the backslash and the escaped character
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else {
                let rest = &src[i + 1..];
                let ch = rest.chars().next().map_or(1, char::len_utf8);
                if rest.as_bytes().get(ch) == Some(&b'\'') {
                    i += 2 + ch;
                } else {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_owned()));
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push(Tok::Sep);
            i += 2;
        } else {
            out.push(match c {
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b',' => Tok::Comma,
                b';' => Tok::Semi,
                b'*' => Tok::Star,
                _ => Tok::Other,
            });
            i += if c.is_ascii() {
                1
            } else {
                src[i..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Use trees and paths

/// One path a `use` tree names (`*` for a glob), and the name it binds (`None` for a glob).
#[derive(Debug, Clone, PartialEq)]
struct UsePath {
    path: Vec<String>,
    binds: Option<String>,
}

/// Expands the use tree starting at `toks[*at]` under `prefix`, up to (not past) the `,`,
/// `}` or `;` that ends it.
fn use_tree(toks: &[Tok], at: &mut usize, prefix: &[String], out: &mut Vec<UsePath>) {
    let mut path = prefix.to_vec();
    if toks.get(*at) == Some(&Tok::Sep) {
        *at += 1; // a leading `::` (`use ::std::x`)
    }
    loop {
        match toks.get(*at) {
            Some(Tok::Open) => {
                *at += 1;
                while !matches!(toks.get(*at), Some(Tok::Close) | None) {
                    use_tree(toks, at, &path, out);
                    if toks.get(*at) == Some(&Tok::Comma) {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            Some(Tok::Star) => {
                *at += 1;
                path.push("*".into());
                out.push(UsePath { path, binds: None });
                return;
            }
            Some(Tok::Ident(name)) => {
                *at += 1;
                if name == "self" && !path.is_empty() {
                    // `a::{self, b}` names `a` itself.
                } else {
                    path.push(name.clone());
                }
                if toks.get(*at) == Some(&Tok::Sep) {
                    *at += 1;
                    continue;
                }
                let mut binds = path.last().cloned();
                if toks.get(*at) == Some(&Tok::Ident("as".into())) {
                    if let Some(Tok::Ident(alias)) = toks.get(*at + 1) {
                        binds = Some(alias.clone());
                    }
                    *at += 2;
                }
                out.push(UsePath { path, binds });
                return;
            }
            _ => return,
        }
    }
}

/// What a file names: the paths of its `use` trees, and the other paths of its code.
#[derive(Debug, Default)]
struct Names {
    uses: Vec<UsePath>,
    paths: Vec<Vec<String>>,
    /// The modules it declares (`mod x;` or `mod x { … }`).
    mods: Vec<String>,
}

fn names(src: &str) -> Names {
    let toks = tokens(src);
    let mut names = Names::default();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(kw) if kw == "use" => {
                i += 1;
                use_tree(&toks, &mut i, &[], &mut names.uses);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    names.mods.push(name.clone());
                }
                i += 2;
            }
            Tok::Ident(first)
                if toks.get(i + 1) == Some(&Tok::Sep) && (i == 0 || toks[i - 1] != Tok::Sep) =>
            {
                let mut path = vec![first.clone()];
                i += 1;
                while toks.get(i) == Some(&Tok::Sep) {
                    match toks.get(i + 1) {
                        Some(Tok::Ident(next)) => {
                            path.push(next.clone());
                            i += 2;
                        }
                        _ => break,
                    }
                }
                names.paths.push(path);
            }
            _ => i += 1,
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// The crate's files and what their paths resolve to

struct File {
    display: String,
    /// The module path from the crate root: `["protocol", "endpoint"]`.
    module: Vec<String>,
    names: Names,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files() -> Vec<File> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = src_dir();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).unwrap();
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            File {
                display: format!("src/{}", rel.display()),
                module,
                names: names(&text),
            }
        })
        .collect()
}

/// The crate root's own names: `crate::X` that `lib.rs` binds with a `use` (`crate::dedupe`
/// → `crate::retry::dedupe`), or declares as a module.
fn root_names(files: &[File]) -> HashMap<String, Vec<String>> {
    let lib = files.iter().find(|f| f.module.is_empty()).unwrap();
    let mut map = HashMap::new();
    for m in &lib.names.mods {
        map.insert(m.clone(), vec!["crate".to_owned(), m.clone()]);
    }
    // Twice, so that `pub use codec::Format` resolves through `pub use protocol::codec`.
    for _ in 0..2 {
        for u in &lib.names.uses {
            let Some(binds) = &u.binds else { continue };
            let resolved = resolve(&u.path, &[], &lib.names.mods, &map);
            map.insert(binds.clone(), resolved);
        }
    }
    map
}

/// `path` as written in `module` (which declares `mods`), from the crate root: `crate::…`
/// for the crate's own items, the crate's name first for another crate's.
fn resolve(
    path: &[String],
    module: &[String],
    mods: &[String],
    root: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let mut here: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            here.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                here.pop();
                rest = &rest[1..];
            }
        }
        Some(first) if module.is_empty() || mods.iter().any(|m| m == first) => {}
        Some(_) => return path.to_vec(), // another crate (or a local item: harmless)
        None => return path.to_vec(),
    }
    if here.is_empty() {
        if let Some(target) = rest.first().and_then(|first| root.get(first)) {
            let mut out = target.clone();
            out.extend_from_slice(&rest[1..]);
            return out;
        }
    }
    let mut out = vec!["crate".to_owned()];
    out.extend(here);
    out.extend_from_slice(rest);
    out
}

/// Every path `file` names, resolved, with how it was written.
fn resolved(file: &File, root: &HashMap<String, Vec<String>>) -> Vec<(Vec<String>, String)> {
    let written = file
        .names
        .uses
        .iter()
        .map(|u| &u.path)
        .chain(&file.names.paths);
    written
        .map(|p| {
            let r = resolve(p, &file.module, &file.names.mods, root);
            (r, p.join("::"))
        })
        .collect()
}

/// The paths of files under `folder` (`src/{folder}`, or a module path such as
/// `middleware::config`) that lead to one of `forbidden`
/// (`crate::middleware` forbids everything under it; `tokio` the tokio crate), unless they
/// lead to one of `allowed`.
fn violations(folder: &str, forbidden: &[&str], allowed: &[&str]) -> Vec<String> {
    let files = files();
    let root = root_names(&files);
    let starts = |path: &[String], prefix: &str| {
        let prefix: Vec<&str> = prefix.split("::").collect();
        path.len() >= prefix.len() && path.iter().zip(&prefix).all(|(a, b)| a == b)
    };
    let mut found = Vec::new();
    for file in files.iter().filter(|f| {
        let within: Vec<&str> = folder.split("::").collect();
        f.module.len() >= within.len() && f.module.iter().zip(&within).all(|(a, b)| a == b)
    }) {
        for (path, written) in resolved(file, &root) {
            if forbidden.iter().any(|f| starts(&path, f))
                && !allowed.iter().any(|a| starts(&path, a))
            {
                found.push(format!(
                    "{}: `{written}` leads to `{}`",
                    file.display,
                    path.join("::")
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

// ---------------------------------------------------------------------------------------------
// The rules

#[test]
fn the_protocol_core_is_sans_io() {
    let found = violations(
        "protocol",
        &[
            "crate::middleware",
            "crate::retry",
            "crate::client",
            "crate::body",
            "crate::redis",
            "tower",
            "tokio",
            "hyper",
            "hyper_util",
            "redis",
            "axum_core",
        ],
        &[],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn retry_options_do_not_import_the_middleware() {
    let found = violations(
        "retry",
        &["crate::middleware", "crate::client", "crate::redis"],
        &[],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_client_does_not_import_the_layer() {
    let found = violations(
        "client",
        &[
            "crate::middleware",
            "crate::retry",
            "crate::redis",
            "crate::protocol::endpoint",
        ],
        &[],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The Redis stores implement the store traits and nothing more: no layer, no protocol.
#[test]
fn the_redis_stores_import_only_the_store_traits() {
    let found = violations(
        "redis",
        &[
            "crate::middleware",
            "crate::retry",
            "crate::protocol::endpoint",
            "crate::protocol::codec",
            "crate::protocol::crypto",
        ],
        // The dedupe and replay traits they implement.
        &["crate::retry::dedupe", "crate::retry::replay"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// Nothing but the middleware itself (and `lib.rs`, which re-exports it) names the middleware,
/// and nothing but `lib.rs` names `redis/`.
#[test]
fn nothing_imports_the_middleware_or_the_redis_stores() {
    for folder in ["protocol", "retry", "client", "body", "store", "ticket"] {
        let found = violations(folder, &["crate::middleware", "crate::redis"], &[]);
        assert!(found.is_empty(), "{found:#?}");
    }
}

/// The middleware's files import one way: the layer builds the service, the service makes the
/// future, and what they share (the config) imports none of them, so no loop runs through it.
#[test]
fn the_middleware_imports_no_loop_through_its_config() {
    let rules: &[(&str, &[&str])] = &[
        (
            "middleware::config",
            &[
                "crate::middleware::layer",
                "crate::middleware::service",
                "crate::middleware::future",
            ],
        ),
        ("middleware::service", &["crate::middleware::layer"]),
        (
            "middleware::future",
            &["crate::middleware::layer", "crate::middleware::service"],
        ),
        (
            "middleware::open",
            &[
                "crate::middleware::layer",
                "crate::middleware::service",
                "crate::middleware::future",
            ],
        ),
        (
            "middleware::retry",
            &[
                "crate::middleware::layer",
                "crate::middleware::service",
                "crate::middleware::future",
            ],
        ),
    ];
    for (module, forbidden) in rules {
        let found = violations(module, forbidden, &[]);
        assert!(found.is_empty(), "{found:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The reader itself: it must see what the rules look for.

fn expand(src: &str) -> Vec<String> {
    names(src)
        .uses
        .into_iter()
        .map(|u| u.path.join("::"))
        .collect()
}

#[test]
fn use_trees_expand_with_nested_braces_self_globs_and_renames() {
    assert_eq!(
        expand("pub(crate) use crate::{a::{self, b::{C, D as E}}, f::*};\nuse ::std::fmt;"),
        [
            "crate::a",
            "crate::a::b::C",
            "crate::a::b::D",
            "crate::f::*",
            "std::fmt"
        ]
    );
    let n = names("use super::{x, y::Z as W};");
    assert_eq!(n.uses[1].binds.as_deref(), Some("W"));
}

#[test]
fn comments_and_literals_hide_nothing_and_add_nothing() {
    let src = r##"
        // use crate::middleware::Hidden;
        /* use crate::retry::Hidden; /* nested */ */
        const S: &str = "use crate::client::Hidden;";
        const R: &str = r#"crate::redis::Hidden "quoted""#;
        const C: char = '"';
        fn f<'a>(x: &'a str) -> &'a str { tokio::spawn(async {}); x }
        use crate::body::Seen;
    "##;
    let n = names(src);
    let uses: Vec<String> = n.uses.iter().map(|u| u.path.join("::")).collect();
    assert_eq!(uses, ["crate::body::Seen"]);
    let paths: Vec<String> = n.paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["tokio::spawn"]);
}

#[test]
fn paths_resolve_against_the_module_and_the_root_reexports() {
    let files = files();
    let root = root_names(&files);
    let s = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
    let module = s("protocol::reply::seal");
    // `super::super::x` from protocol/reply/seal.rs is protocol's x.
    assert_eq!(
        resolve(&s("super::super::crypto::Key"), &module, &[], &root),
        s("crate::protocol::crypto::Key")
    );
    // The root's re-exports: `crate::dedupe` is the retry option, `crate::WechatLayer` the
    // middleware's.
    assert_eq!(
        resolve(&s("crate::dedupe::DedupeStore"), &module, &[], &root),
        s("crate::retry::dedupe::DedupeStore")
    );
    assert_eq!(
        resolve(&s("crate::WechatLayer"), &module, &[], &root),
        s("crate::middleware::WechatLayer")
    );
    // A child module declared in the file, and another crate.
    assert_eq!(
        resolve(&s("inner::X"), &module, &s("inner"), &root),
        s("crate::protocol::reply::seal::inner::X")
    );
    assert_eq!(
        resolve(&s("tokio::spawn"), &module, &[], &root),
        s("tokio::spawn")
    );
}
