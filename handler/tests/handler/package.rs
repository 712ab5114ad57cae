//! The deployment zip: byte-identical across two packagings of the same binary (so the same
//! Lambda CodeSha256), with `bootstrap` at its root, mode 0755. Runs the real `package-handler`
//! on the real (debug) `bootstrap`; the zip is read back by a parser written here, independent of
//! the writer. No test bed needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};

const PACKAGER: &str = env!("CARGO_BIN_EXE_package-handler");
const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");

/// A scratch directory removed at the end, also on panic.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("papi-handler-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "arm64",
        other => panic!("unsupported test architecture {other}"),
    }
}

fn package(binary: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(PACKAGER)
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run package-handler")
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

struct Entry {
    name: String,
    unix_mode: u32,
    made_by_unix: bool,
    dos_date: u16,
    dos_time: u16,
    data: Vec<u8>,
}

/// Reads every entry of a zip through its central directory.
fn read_zip(zip: &[u8]) -> Vec<Entry> {
    let eocd = zip.len() - 22;
    assert_eq!(
        le32(zip, eocd),
        0x0605_4b50,
        "end of central directory record last, no comment"
    );
    let count = usize::from(le16(zip, eocd + 10));
    let mut at = le32(zip, eocd + 16) as usize;
    let mut entries = Vec::new();
    for _ in 0..count {
        assert_eq!(le32(zip, at), 0x0201_4b50, "central directory header");
        let made_by = le16(zip, at + 4);
        let method = le16(zip, at + 10);
        let (dos_time, dos_date) = (le16(zip, at + 12), le16(zip, at + 14));
        let crc = le32(zip, at + 16);
        let csize = le32(zip, at + 20) as usize;
        let size = le32(zip, at + 24) as usize;
        let name_len = usize::from(le16(zip, at + 28));
        let extra_len = usize::from(le16(zip, at + 30));
        let comment_len = usize::from(le16(zip, at + 32));
        let external = le32(zip, at + 38);
        let local = le32(zip, at + 42) as usize;
        let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).expect("name");

        assert_eq!(le32(zip, local), 0x0403_4b50, "local header");
        let data_at =
            local + 30 + usize::from(le16(zip, local + 26)) + usize::from(le16(zip, local + 28));
        let compressed = &zip[data_at..data_at + csize];
        let data = match method {
            8 => miniz_oxide::inflate::decompress_to_vec(compressed).expect("inflate"),
            0 => compressed.to_vec(),
            m => panic!("compression method {m}"),
        };
        assert_eq!(data.len(), size);
        assert_eq!(crc32fast::hash(&data), crc, "CRC of {name}");
        entries.push(Entry {
            name,
            unix_mode: external >> 16,
            made_by_unix: made_by >> 8 == 3,
            dos_date,
            dos_time,
            data,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    entries
}

fn manifest_field(manifest: &serde_json::Value, key: &str) -> String {
    match &manifest[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn same_binary_gives_a_byte_identical_zip() {
    let scratch = Scratch::new("package");
    let binary = std::fs::read(BOOTSTRAP).expect("bootstrap");
    // Two copies of the binary with different paths, modification times (years apart) and modes,
    // packaged into two directories.
    let (a, b) = (scratch.0.join("a"), scratch.0.join("b"));
    for (dir, mtime) in [(&a, 1_000_000_000), (&b, 1_700_000_000)] {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("bootstrap"), &binary).expect("copy");
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join("bootstrap"))
            .expect("open copy");
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
            .expect("set mtime");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(b.join("bootstrap"), perms).expect("chmod");
    }
    // The second with an explicit (matching) --arch: the same output.
    for (dir, args) in [(&a, vec![]), (&b, vec!["--arch", this_arch()])] {
        let out = package(&dir.join("bootstrap"), &dir.join("out"), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let zip_name = format!("privateapi-handler-{}.zip", this_arch());
    let manifest_name = format!("privateapi-handler-{}.json", this_arch());
    let zip_a = std::fs::read(a.join("out").join(&zip_name)).expect("zip a");
    let zip_b = std::fs::read(b.join("out").join(&zip_name)).expect("zip b");
    assert!(zip_a == zip_b, "two packagings of the same binary differ");
    let manifest_a = std::fs::read(a.join("out").join(&manifest_name)).expect("manifest a");
    let manifest_b = std::fs::read(b.join("out").join(&manifest_name)).expect("manifest b");
    assert_eq!(manifest_a, manifest_b);

    // bootstrap at the root, mode 0755, fixed timestamp, the binary itself.
    let entries = read_zip(&zip_a);
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.name, "bootstrap");
    assert!(
        entry.made_by_unix,
        "Unix attributes, so Lambda keeps the mode"
    );
    assert_eq!(
        entry.unix_mode, 0o100_755,
        "regular file rwxr-xr-x: {:o}",
        entry.unix_mode
    );
    assert_eq!(
        (entry.dos_date, entry.dos_time),
        (0x21, 0),
        "1980-01-01 00:00"
    );
    assert!(entry.data == binary, "the entry is the binary");

    // The manifest: architecture, Lambda's CodeSha256 (base64 SHA-256 of the zip), sizes.
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_a).expect("manifest JSON");
    assert_eq!(manifest_field(&manifest, "arch"), this_arch());
    assert_eq!(manifest_field(&manifest, "zip"), zip_name);
    assert_eq!(
        manifest_field(&manifest, "code_sha256"),
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip_a))
    );
    assert_eq!(manifest_field(&manifest, "size"), zip_a.len().to_string());
    assert_eq!(
        manifest_field(&manifest, "bootstrap_size"),
        binary.len().to_string()
    );
    assert_eq!(manifest_field(&manifest, "runtime"), "provided.al2023");
}

#[test]
fn packaging_checks_the_binary() {
    let scratch = Scratch::new("package-checks");
    let out = &scratch.0;
    let bootstrap = Path::new(BOOTSTRAP);

    // --arch must match the ELF header.
    let other = if this_arch() == "x86_64" {
        "arm64"
    } else {
        "x86_64"
    };
    let res = package(bootstrap, out, &["--arch", other]);
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains(&format!("not {other}")), "{stderr}");

    // Something that is not an ELF executable.
    let script = out.join("script");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("script");
    let res = package(&script, out, &[]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("not an ELF file"));

    // A glibc ceiling below what the binary needs is refused (this build needs some GLIBC_2.x).
    let res = package(bootstrap, out, &["--max-glibc", "2.1"]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("needs glibc"));

    // Usage errors exit 2.
    let res = Command::new(PACKAGER)
        .arg("--binary")
        .output()
        .expect("run");
    assert_eq!(res.status.code(), Some(2));
}
