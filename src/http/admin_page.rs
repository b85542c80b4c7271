//! `GET /admin`: one self-contained page (admin_page.html: HTML, inline CSS
//! and JS, no external assets) for people who run calsaga: the health
//! roll-up, workflows by state and one workflow's timeline drawn as SVG.
//!
//! The page is a static shell that holds no data, so it is public. A browser
//! cannot send a Bearer header on navigation: the page's script takes the
//! admin token from the URL fragment (`/admin#token=...`, which browsers
//! never send to a server, so it never reaches our access log) or from a
//! form, keeps it in sessionStorage and calls the admin JSON routes with
//! `Authorization: Bearer`. This module must never put data or a token into
//! the page; its Content-Security-Policy allows exactly the page's own
//! inline script and style (by hash) and requests to this origin.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::App;
use super::call::Call;
use super::reply::{ApiError, Reply};

/// The page, byte for byte as it is served.
const PAGE: &str = include_str!("admin_page.html");

/// Built once: hashing the page's blocks on every request would be waste.
static POLICY: LazyLock<String> = LazyLock::new(|| policy(PAGE));

pub fn page(_app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(reply())
}

fn reply() -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type", "text/html; charset=utf-8".into()),
            ("Content-Security-Policy", POLICY.clone()),
            // The shell is the same for everyone, but what the browser keeps
            // next to it (history, bfcache) may show data: keep nothing.
            ("Cache-Control", "no-store".into()),
            ("Referrer-Policy", "no-referrer".into()),
            ("X-Content-Type-Options", "nosniff".into()),
            ("X-Frame-Options", "DENY".into()),
        ],
        body: PAGE.as_bytes().to_vec(),
    }
}

/// Nothing loads from anywhere but the page itself and this origin's API;
/// no framing, no form posts, no `<base>` rewrites.
fn policy(page: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes(page, "script"),
        hashes(page, "style"),
    )
}

/// The CSP source list of every inline `<tag>` block: `'sha256-<base64>'`
/// each, or `'none'` without one.
fn hashes(page: &str, tag: &str) -> String {
    let list: Vec<String> = blocks(page, tag)
        .map(|text| format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes()))))
        .collect();
    if list.is_empty() {
        "'none'".to_string()
    } else {
        list.join(" ")
    }
}

/// The text of each `<tag>...</tag>` block (opening tag without attributes,
/// as the page writes them), exactly as a browser hashes it.
fn blocks<'p>(page: &'p str, tag: &str) -> impl Iterator<Item = &'p str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = page;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(text)
    })
}

/// Standard base64 with padding (RFC 4648 section 4), as CSP hashes want it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        let lower = PAGE.to_ascii_lowercase();
        // The SVG namespace is a name, not something fetched.
        let fetched = lower
            .replace("\"http://www.w3.org/2000/svg\"", "")
            .matches("://")
            .count();
        assert_eq!(fetched, 0, "the page names an absolute URL");
        for external in [
            "<script ",
            " src=",
            "<link rel=\"stylesheet\"",
            "@import",
            "<iframe",
            "<object",
            "<embed",
            "innerhtml",
        ] {
            assert!(!lower.contains(external), "the page contains {external:?}");
        }
        let urls: Vec<&str> = lower
            .match_indices("url(")
            .map(|(i, _)| &lower[i..i + 5])
            .collect();
        assert!(
            urls.iter().all(|u| *u == "url(#"),
            "only in-document references: {urls:?}"
        );
        assert_eq!(blocks(PAGE, "script").count(), 1);
        assert_eq!(blocks(PAGE, "style").count(), 1);
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_own_script_and_style() {
        let reply = reply();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let csp = reply.header("content-security-policy").unwrap_or_default();
        for block in ["script", "style"] {
            let text = blocks(PAGE, block).next().unwrap_or_default();
            let hash = base64(&Sha256::digest(text.as_bytes()));
            assert!(
                csp.contains(&format!("{block}-src 'sha256-{hash}';")),
                "{csp}"
            );
        }
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(hashes("<p>no script</p>", "script"), "'none'");
    }

    #[test]
    fn base64_follows_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }
}
