//! A minimal HTTP/1.1 client for `streamcore explain-watermarks --http URL` and
//! `streamcore submit --http-url URL`: one request to a streamcore endpoint (plain HTTP,
//! usually loopback), no TLS, no redirects.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The host:port and path prefix of an `http://host:port[/prefix]` URL.
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("`{url}`: expected an http://host:port URL"))?;
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        bail!("`{url}`: no host");
    }
    Ok((host.to_string(), prefix.to_string()))
}

/// GETs `path` from the endpoint at `base`; returns the body of a 2xx answer.
pub fn get(base: &str, path: &str) -> anyhow::Result<String> {
    let (status, body) = request(base, "GET", path, None, None)?;
    if !(200..300).contains(&status) {
        bail!("{base}{path}: HTTP {status}: {}", body.trim());
    }
    Ok(body)
}

/// Sends one request to the endpoint at `base`: `body` as (content type, bytes), `token` as
/// the bearer token. Returns the status and the body, whatever the status.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let (host, prefix) = split_url(base)?;
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| {
            format!("connecting to {base} (is the job or `streamcore serve` running with --http?)")
        })?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!(
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: */*\r\n"
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match body {
        Some((content_type, bytes)) => head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        )),
        None if method == "GET" => head.push_str("\r\n"),
        None => head.push_str("Content-Length: 0\r\n\r\n"),
    }
    stream.write_all(head.as_bytes())?;
    if let Some((_, bytes)) = body {
        stream.write_all(bytes)?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{base}: not an HTTP answer"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{base}: no status in the answer"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Decodes a chunked body.
fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).unwrap_or("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_chunks() {
        assert_eq!(
            split_url("http://127.0.0.1:8081").unwrap(),
            ("127.0.0.1:8081".into(), "".into())
        );
        assert_eq!(
            split_url("http://h:1/x/").unwrap(),
            ("h:1".into(), "/x".into())
        );
        assert!(split_url("https://h:1").is_err());
        assert_eq!(
            dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            "abcde"
        );
    }
}
