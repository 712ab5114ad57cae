//! Deployment packaging: the Lambda zip for a `bootstrap` binary, written deterministically.
//!
//! The zip holds one entry, `bootstrap`, at the root, mode `0755`, deflated, with a fixed
//! timestamp (1980-01-01 00:00, the zip epoch) and no extra fields, so the same binary always gives
//! the same bytes and so the same Lambda `CodeSha256`. (The compressor is `miniz_oxide` at a fixed
//! level, pinned by Cargo.lock.) A JSON manifest next to it records the architecture the binary was
//! built for, read from its ELF header.
//!
//! Written by hand (about a hundred lines) rather than with the `zip` crate: one entry, no zip64,
//! no encryption, and full control of every byte.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use object::LittleEndian;
use object::ReadRef as _;
use object::elf::{self, FileHeader64};
use object::read::elf::FileHeader as _;
use sha2::{Digest, Sha256};

/// Name of the entry in the zip: what the `provided.*` runtimes execute.
pub const ENTRY_NAME: &str = "bootstrap";
/// Unix mode of the entry: a regular file, rwxr-xr-x.
pub const ENTRY_MODE: u32 = 0o100_755;
/// File name prefix of the outputs: `<PREFIX>-<arch>.zip` and `<PREFIX>-<arch>.json`.
pub const FILE_PREFIX: &str = "privateapi-handler";
/// The Lambda runtime the zip is for.
pub const RUNTIME: &str = "provided.al2023";
/// glibc of Amazon Linux 2023 (`provided.al2023`): a binary needing a newer one fails to start.
pub const AL2023_GLIBC: GlibcVersion = GlibcVersion(2, 34);

const DEFLATE_LEVEL: u8 = 9;
const DOS_TIME: u16 = 0; // 00:00:00
const DOS_DATE: u16 = 1 << 5 | 1; // 1980-01-01
const VERSION_NEEDED: u16 = 20; // 2.0: deflate
const VERSION_MADE_BY: u16 = 3 << 8 | 20; // Unix, 2.0: external attributes hold the Unix mode

/// A packaging failure, with a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageError(pub String);

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PackageError {}

fn err(msg: impl Into<String>) -> PackageError {
    PackageError(msg.into())
}

/// A Lambda instruction set architecture, named as Lambda's `Architectures` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// `x86_64` or `arm64`, as in Lambda's `Architectures`.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Accepts Lambda's names and the usual aliases (`amd64`, `aarch64`).
    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "x86_64" | "amd64" | "x86-64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lambda_name())
    }
}

/// A glibc version `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32);

impl GlibcVersion {
    pub fn parse(s: &str) -> Option<GlibcVersion> {
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        // A third component (2.3.4) only matters below any version Lambda has ever had.
        Some(GlibcVersion(major, minor))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// What the packager needs to know about the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub arch: Arch,
    /// The newest `GLIBC_x.y` symbol version it needs; `None` for a static (e.g. musl) binary.
    pub glibc: Option<GlibcVersion>,
}

/// Reads the architecture and the glibc version needed from a little-endian ELF64 executable
/// (what both Lambda architectures run), with the `object` crate's ELF reader.
pub fn inspect_elf(b: &[u8]) -> Result<ElfInfo, PackageError> {
    if b.get(0..4) != Some(b"\x7fELF") {
        return Err(err("not an ELF file"));
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err(err("not a 64-bit little-endian ELF file"));
    }
    // The raw header, not `FileHeader::parse`: what the packager checks (type, machine) gets its
    // own message, not "unsupported".
    let header = b
        .read_at::<FileHeader64<LittleEndian>>(0)
        .map_err(|()| err("malformed ELF header"))?;
    let e_type = header.e_type(LittleEndian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(err(format!("not an ELF executable (e_type {e_type})")));
    }
    let arch = match header.e_machine(LittleEndian) {
        elf::EM_X86_64 => Arch::X86_64,
        elf::EM_AARCH64 => Arch::Arm64,
        other => {
            return Err(err(format!(
                "ELF machine {other} is neither x86_64 (62) nor aarch64 (183)"
            )));
        }
    };
    Ok(ElfInfo {
        arch,
        glibc: glibc_needed(header, b).ok_or_else(|| err("malformed ELF section headers"))?,
    })
}

/// The newest `GLIBC_*` version in the binary's version needs (`.gnu.version_r`); `Some(None)`
/// when it needs none (a static binary), `None` when the section headers cannot be read.
fn glibc_needed(header: &FileHeader64<LittleEndian>, b: &[u8]) -> Option<Option<GlibcVersion>> {
    let sections = header.sections(LittleEndian, b).ok()?;
    let Some((mut needs, link)) = sections.gnu_verneed(LittleEndian, b).ok()? else {
        return Some(None);
    };
    let strings = sections.strings(LittleEndian, b, link).ok()?;
    let mut newest: Option<GlibcVersion> = None;
    while let Some((_, mut versions)) = needs.next().ok()? {
        while let Some(version) = versions.next().ok()? {
            let name = std::str::from_utf8(version.name(LittleEndian, strings).ok()?).ok()?;
            if let Some(v) = name.strip_prefix("GLIBC_").and_then(GlibcVersion::parse) {
                newest = newest.max(Some(v));
            }
        }
    }
    Some(newest)
}

/// A zip archive holding `data` as the single entry `name` with Unix `mode`, deflated, with a
/// fixed timestamp: the same input always gives the same bytes.
pub fn zip_single(name: &str, mode: u32, data: &[u8]) -> Result<Vec<u8>, PackageError> {
    let too_big = || err("the binary is too large for a zip without zip64 (4 GiB)");
    let compressed = miniz_oxide::deflate::compress_to_vec(data, DEFLATE_LEVEL);
    let crc = crc32fast::hash(data);
    let size = u32::try_from(data.len()).map_err(|_| too_big())?;
    let csize = u32::try_from(compressed.len()).map_err(|_| too_big())?;
    let name_len = u16::try_from(name.len()).map_err(|_| err("entry name too long"))?;

    let mut out = Vec::with_capacity(compressed.len() + 2 * name.len() + 128);
    let put16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    let put32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());

    // Local file header.
    put32(&mut out, 0x0403_4b50);
    put16(&mut out, VERSION_NEEDED);
    put16(&mut out, 0); // flags: sizes known up front, no data descriptor; ASCII name
    put16(&mut out, 8); // deflate
    put16(&mut out, DOS_TIME);
    put16(&mut out, DOS_DATE);
    put32(&mut out, crc);
    put32(&mut out, csize);
    put32(&mut out, size);
    put16(&mut out, name_len);
    put16(&mut out, 0); // no extra field (no extended timestamps, no uid/gid)
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&compressed);

    // Central directory.
    let cd_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    put32(&mut out, 0x0201_4b50);
    put16(&mut out, VERSION_MADE_BY);
    put16(&mut out, VERSION_NEEDED);
    put16(&mut out, 0);
    put16(&mut out, 8);
    put16(&mut out, DOS_TIME);
    put16(&mut out, DOS_DATE);
    put32(&mut out, crc);
    put32(&mut out, csize);
    put32(&mut out, size);
    put16(&mut out, name_len);
    put16(&mut out, 0); // extra
    put16(&mut out, 0); // comment
    put16(&mut out, 0); // disk number
    put16(&mut out, 0); // internal attributes
    put32(&mut out, mode << 16); // external attributes: Unix mode in the high half
    put32(&mut out, 0); // offset of the local header
    out.extend_from_slice(name.as_bytes());
    let cd_size = u32::try_from(out.len()).map_err(|_| too_big())? - cd_offset;

    // End of central directory.
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, 1);
    put16(&mut out, 1);
    put32(&mut out, cd_size);
    put32(&mut out, cd_offset);
    put16(&mut out, 0); // comment length
    Ok(out)
}

/// Lambda's `CodeSha256` of a deployment package: base64 of its SHA-256.
pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`package`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    pub arch: Arch,
    pub zip_path: PathBuf,
    pub manifest_path: PathBuf,
    pub code_sha256: String,
    pub zip_size: u64,
    pub binary_size: u64,
    pub glibc: Option<GlibcVersion>,
}

/// Packages `binary` into `<out_dir>/privateapi-handler-<arch>.zip` plus its manifest
/// `<out_dir>/privateapi-handler-<arch>.json`.
///
/// `arch`, if given, must match the binary's ELF header (else the ELF header decides). A binary
/// needing a glibc newer than `max_glibc` is refused (None: no check).
pub fn package(
    binary: &Path,
    arch: Option<Arch>,
    out_dir: &Path,
    max_glibc: Option<GlibcVersion>,
) -> Result<Packaged, PackageError> {
    let data =
        fs::read(binary).map_err(|e| err(format!("cannot read {}: {e}", binary.display())))?;
    let info = inspect_elf(&data).map_err(|e| err(format!("{}: {e}", binary.display())))?;
    if let Some(arch) = arch
        && arch != info.arch
    {
        return Err(err(format!(
            "{} is built for {}, not {arch}",
            binary.display(),
            info.arch
        )));
    }
    if let (Some(needed), Some(max)) = (info.glibc, max_glibc)
        && needed > max
    {
        return Err(err(format!(
            "{} needs glibc {needed}, newer than {max} ({RUNTIME} has {AL2023_GLIBC}): build it \
             against an older glibc or for a musl target",
            binary.display()
        )));
    }

    let zip = zip_single(ENTRY_NAME, ENTRY_MODE, &data)?;
    let sha = code_sha256(&zip);
    let arch = info.arch;
    let zip_name = format!("{FILE_PREFIX}-{arch}.zip");
    let manifest_name = format!("{FILE_PREFIX}-{arch}.json");
    // Written by hand to fix the key order (serde_json's map order depends on workspace features).
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let manifest = format!(
        "{{\n  \"arch\": {},\n  \"zip\": {},\n  \"code_sha256\": {},\n  \"size\": {},\n  \
         \"runtime\": {},\n  \"handler\": {},\n  \"bootstrap_sha256_hex\": {},\n  \
         \"bootstrap_size\": {},\n  \"glibc_required\": {}\n}}\n",
        q(arch.lambda_name()),
        q(&zip_name),
        q(&sha),
        zip.len(),
        q(RUNTIME),
        q(ENTRY_NAME),
        q(&hex(&Sha256::digest(&data))),
        data.len(),
        info.glibc.map_or("null".to_owned(), |v| q(&v.to_string())),
    );

    fs::create_dir_all(out_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", out_dir.display())))?;
    let zip_path = out_dir.join(&zip_name);
    let manifest_path = out_dir.join(&manifest_name);
    write_atomically(&zip_path, &zip)?;
    write_atomically(&manifest_path, manifest.as_bytes())?;
    Ok(Packaged {
        arch,
        zip_path,
        manifest_path,
        code_sha256: sha,
        zip_size: zip.len() as u64,
        binary_size: data.len() as u64,
        glibc: info.glibc,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(|e| err(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(Arch::parse("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("riscv64"), None);
        assert_eq!(Arch::Arm64.to_string(), "arm64");
    }

    #[test]
    fn glibc_versions_order() {
        assert!(GlibcVersion::parse("2.34") < GlibcVersion::parse("2.35"));
        assert!(GlibcVersion::parse("2.9") < GlibcVersion::parse("2.17"));
        assert_eq!(GlibcVersion::parse("2.3.4"), Some(GlibcVersion(2, 3)));
        assert_eq!(GlibcVersion::parse("PRIVATE"), None);
    }

    #[test]
    fn rejects_non_elf_and_truncated_elf() {
        assert!(inspect_elf(b"#!/bin/sh\n").is_err());
        assert!(inspect_elf(b"\x7fELF\x02\x01").is_err());
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[16] = 2;
        header[18] = 40; // ARM (32-bit)
        assert!(inspect_elf(&header).unwrap_err().0.contains("neither"));
        header[18] = 183;
        header[0x28] = 0xff; // section headers past the end
        header[0x3c] = 1;
        assert!(inspect_elf(&header).is_err());
    }

    #[test]
    fn zip_layout_is_fixed() {
        let zip = zip_single("bootstrap", ENTRY_MODE, b"hello").expect("zip");
        assert_eq!(&zip[..4], b"PK\x03\x04");
        assert_eq!(
            zip,
            zip_single("bootstrap", ENTRY_MODE, b"hello").expect("zip")
        );
        assert_eq!(&zip[zip.len() - 22..zip.len() - 18], b"PK\x05\x06");
        assert_eq!(code_sha256(&zip).len(), 44);
    }
}
