//! A real S3-compatible server for a test: moto's (`pip install moto[server]`, done by
//! `scripts/setup.sh`), started on a free loopback port and stopped by pid when dropped. Plain
//! HTTP/1.0 requests here set it up and look inside it; pgkeel talks to it as to any bucket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key and secret the tests hand pgkeel (moto accepts any).
pub const ACCESS_KEY: &str = "AKIAPGKEELTEST";
pub const SECRET_KEY: &str = "pgkeel-test-secret-do-not-print";

pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Starts moto on a free port and waits until it answers. Panics with what to install when
    /// it cannot start: a bucket test never skips silently.
    pub fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 -m moto.server ({e}): run scripts/setup.sh")
            });
        let mut server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto.server exited ({status}): install it with scripts/setup.sh (pip install 'moto[server]')");
            }
            if server.request("GET", "/", b"").map(|(s, _)| s) == Some(200) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "moto.server did not answer on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS_* variables that point pgkeel at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .request("PUT", &format!("/{bucket}"), b"")
            .expect("moto answers");
        assert_eq!(
            status,
            200,
            "creating bucket {bucket}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Writes (or overwrites) `key` with `body`, signed as the test's user (boto3, installed
    /// with moto): an unsigned request may not replace what a signed one wrote.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id=sys.argv[4], aws_secret_access_key=sys.argv[5]).put_object(\
                 Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.stdin.buffer.read())",
                &self.endpoint(),
                bucket,
                key,
                ACCESS_KEY,
                SECRET_KEY,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3 with boto3 (installed with moto)");
        child.stdin.take().unwrap().write_all(body).unwrap();
        assert!(child.wait().unwrap().success(), "putting {bucket}/{key}");
    }

    /// Keys and sizes under `prefix`, in key order.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let (status, body) = self
            .request(
                "GET",
                &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
                b"",
            )
            .expect("moto answers");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "listing {bucket}/{prefix}: {text}");
        let between = |s: &str, open: &str, close: &str| -> Option<String> {
            let a = s.find(open)? + open.len();
            let b = s[a..].find(close)? + a;
            Some(s[a..b].to_string())
        };
        text.split("<Contents>")
            .skip(1)
            .filter_map(|c| {
                Some((
                    between(c, "<Key>", "</Key>")?,
                    between(c, "<Size>", "</Size>")?.parse().ok()?,
                ))
            })
            .collect()
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
        let status = std::str::from_utf8(&out[..split])
            .ok()?
            .split(' ')
            .nth(1)?
            .parse()
            .ok()?;
        Some((status, out[split + 4..].to_vec()))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
