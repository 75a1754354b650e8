//! A certificate chain and its key from PEM files: read, parsed, checked
//! to belong together, and the DNS names the certificate serves.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Why a pair cannot be served, with the field at fault (`cert_path` or
/// `key_path`) for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    pub field: &'static str,
    pub message: String,
}

impl PairError {
    fn cert(path: &Path, what: impl std::fmt::Display) -> Self {
        Self {
            field: "cert_path",
            message: format!("{}: {what}", path.display()),
        }
    }

    fn key(path: &Path, what: impl std::fmt::Display) -> Self {
        Self {
            field: "key_path",
            message: format!("{}: {what}", path.display()),
        }
    }
}

/// A pair ready to serve.
#[derive(Debug)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// The DNS names (and wildcards) of its subject alternative names.
    pub san_names: Vec<String>,
}

/// Reads and checks the pair. Never panics, whatever the files hold: a
/// half-written file is an error like any other.
pub fn load(cert: &Path, key: &Path) -> Result<Loaded, PairError> {
    let cert_pem = std::fs::read(cert).map_err(|e| PairError::cert(cert, cannot_read(&e)))?;
    let key_pem = std::fs::read(key).map_err(|e| PairError::key(key, cannot_read(&e)))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PairError::cert(cert, format!("not a PEM certificate chain ({e})")))?;
    let Some(end_entity) = chain.first() else {
        return Err(PairError::cert(cert, "holds no PEM certificate"));
    };
    let parsed = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| PairError::cert(cert, format!("not a valid X.509 certificate ({e})")))?;
    let san_names = parsed.valid_dns_names().map(str::to_owned).collect();
    // Never the key's bytes in a message: only what kind of problem.
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| PairError::key(key, "holds no PEM private key"))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => PairError::key(
            key,
            format!("does not match the certificate in {}", cert.display()),
        ),
        _ => PairError::key(key, "an unsupported or malformed private key"),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        san_names,
    })
}

fn cannot_read(e: &std::io::Error) -> String {
    format!("cannot read: {e}")
}

/// What tells a file was replaced or rewritten: a rename gives it another
/// inode, a write another length or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

/// The identity of a pair's two files (`None` for one that is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairId([Option<FileId>; 2]);

impl PairId {
    pub fn of(cert: &Path, key: &Path) -> Self {
        let id = |p: &Path| {
            std::fs::metadata(p).ok().map(|m| FileId {
                inode: m.ino(),
                len: m.len(),
                modified: m.modified().ok(),
            })
        };
        Self([id(cert), id(key)])
    }
}
