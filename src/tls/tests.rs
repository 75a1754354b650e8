//! The certificates over real files made here (rcgen): what loads, what is
//! refused and how it is named, SNI over loaded pairs, and a pair replaced
//! on disk, half-written first.

use super::*;
use crate::config::{CertFiles, Tls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!(
            "modelswitch-tls-unit-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ca() -> Issuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Issuer::new(p, KeyPair::generate().unwrap())
}

/// (certificate PEM, key PEM) for `names`.
fn issue(ca: &Issuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let p =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, ca).unwrap().pem(), key.serialize_pem())
}

fn write(dir: &Path, stem: &str, pair: &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, &pair.0).unwrap();
    std::fs::write(&k, &pair.1).unwrap();
    (c, k)
}

fn files(at: &str, (cert, key): (PathBuf, PathBuf), names: Option<&[&str]>) -> CertFiles {
    CertFiles {
        at: at.into(),
        cert,
        key,
        names: names.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn served(c: &Certificates, sni: Option<&str>) -> Vec<u8> {
    c.select(sni).unwrap().cert[0].to_vec()
}

/// `pair` written as `live.pem`/`live.key` in `d` and loaded as the
/// default certificate.
fn live_pair(d: &Dir, pair: &(String, String)) -> (PathBuf, PathBuf, Certificates) {
    let (cert, key) = write(&d.0, "live", pair);
    let tls = Tls {
        default: files("server.tls", (cert.clone(), key.clone()), None),
        sni: vec![],
        http2: true,
    };
    (cert, key, Certificates::load(&tls).unwrap())
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn pairs_are_chosen_by_their_own_names_or_the_configured_ones() {
    let d = Dir::new();
    let ca = ca();
    let default = issue(&ca, &["localhost"]);
    let a = issue(&ca, &["a.test", "*.wild.test"]);
    let b = issue(&ca, &["b.test"]);
    let tls = Tls {
        default: files("server.tls", write(&d.0, "d", &default), None),
        sni: vec![
            files("server.tls.certificates[0]", write(&d.0, "a", &a), None),
            files(
                "server.tls.certificates[1]",
                write(&d.0, "b", &b),
                Some(&["other.test"]),
            ),
        ],
        http2: true,
    };
    let c = Certificates::load(&tls).unwrap();
    assert_eq!(served(&c, Some("a.test")), der(&a.0));
    assert_eq!(served(&c, Some("X.Wild.Test")), der(&a.0));
    assert_eq!(served(&c, Some("other.test")), der(&b.0));
    // `names` replaces the certificate's own.
    assert_eq!(served(&c, Some("b.test")), der(&default.0));
    assert_eq!(served(&c, None), der(&default.0));
}

#[test]
fn every_bad_pair_is_named_by_toml_path_and_file() {
    let d = Dir::new();
    let ca = ca();
    let good = write(&d.0, "good", &issue(&ca, &["localhost"]));
    let other = write(&d.0, "other", &issue(&ca, &["localhost"]));
    let no_names = write(&d.0, "nonames", &issue(&ca, &[]));
    let garbage = d.0.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let tls = Tls {
        default: files(
            "server.tls",
            (d.0.join("missing.pem"), good.1.clone()),
            None,
        ),
        sni: vec![
            files(
                "server.tls.certificates[0]",
                (good.0.clone(), other.1),
                None,
            ),
            files(
                "server.tls.certificates[1]",
                (garbage.clone(), good.1.clone()),
                None,
            ),
            files(
                "server.tls.certificates[2]",
                (good.0.clone(), garbage.clone()),
                None,
            ),
            files("server.tls.certificates[3]", no_names, None),
        ],
        http2: true,
    };
    let errs = Certificates::load(&tls).unwrap_err();
    let want = [
        "server.tls.cert_path: ",
        "server.tls.certificates[0].key_path: ",
        "server.tls.certificates[1].cert_path: ",
        "server.tls.certificates[2].key_path: ",
        "server.tls.certificates[3].cert_path: ",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "{e} / {w}");
    }
    assert!(errs[0].contains("missing.pem: cannot read"), "{}", errs[0]);
    assert!(
        errs[1].contains("does not match the certificate"),
        "{}",
        errs[1]
    );
    assert!(errs[4].contains("names = [...]"), "{}", errs[4]);
}

#[test]
fn a_replaced_pair_is_served_once_both_files_agree() {
    let d = Dir::new();
    let ca = ca();
    let first = issue(&ca, &["localhost"]);
    let (cert, key, c) = live_pair(&d, &first);
    let check = |c: &Certificates| {
        let mut w = c.watch.lock().unwrap();
        c.reload_changed(&mut w);
    };
    check(&c);
    assert_eq!(served(&c, None), der(&first.0), "nothing changed");

    // The certificate renamed in before its key: refused, the old served.
    let second = issue(&ca, &["localhost"]);
    let tmp = d.0.join("tmp");
    std::fs::write(&tmp, &second.0).unwrap();
    std::fs::rename(&tmp, &cert).unwrap();
    check(&c);
    assert_eq!(served(&c, None), der(&first.0));
    assert!(c.watch.lock().unwrap().refused[0].is_some());
    // A truncated key: still the old pair, never a panic.
    std::fs::write(&key, &second.1[..20]).unwrap();
    check(&c);
    assert_eq!(served(&c, None), der(&first.0));

    // The key arrives whole: the new pair.
    std::fs::write(&tmp, &second.1).unwrap();
    std::fs::rename(&tmp, &key).unwrap();
    check(&c);
    assert_eq!(served(&c, Some("localhost")), der(&second.0));
    assert!(c.watch.lock().unwrap().refused[0].is_none());

    // A file removed: the pair in use stays.
    std::fs::remove_file(&key).unwrap();
    check(&c);
    assert_eq!(served(&c, None), der(&second.0));
}

#[test]
fn the_files_are_looked_at_at_most_once_a_second() {
    let d = Dir::new();
    let ca = ca();
    let first = issue(&ca, &["localhost"]);
    let (_, _, c) = live_pair(&d, &first);
    let _ = c.select(None);
    let second = issue(&ca, &["localhost"]);
    write(&d.0, "live", &second);
    // Within the second after a look, handshakes read no file.
    assert_eq!(served(&c, None), der(&first.0));
    c.next_check.store(0, Ordering::Relaxed);
    assert_eq!(served(&c, None), der(&second.0));
}

/// What `[server]` with `server` says (the file checks aside: `parse`
/// reads no file).
fn config_errors(server: &str) -> Vec<String> {
    let text = format!(
        "[server]\n{server}\n\n[[providers]]\nname = \"p\"\ntype = \"openai\"\n\
         base_url = \"http://127.0.0.1:9/v1\"\n\n[[models]]\nname = \"m\"\n\
         targets = [{{ provider = \"p\", model = \"x\" }}]\n\n[[api_keys]]\n\
         key = \"sk-unit-test-key-0001\"\nname = \"k\"\n"
    );
    match crate::config::parse(&text) {
        Ok(_) => vec![],
        Err(e) => e.0,
    }
}

#[test]
fn tls_settings_are_validated_with_their_toml_paths() {
    let tls = "\n[server.tls]\ncert_path = \"c.pem\"\nkey_path = \"k.pem\"";
    assert_eq!(
        config_errors(&format!("tls_listen = \"127.0.0.1:8443\"{tls}")),
        Vec::<String>::new()
    );
    // TLS only.
    assert_eq!(
        config_errors(&format!(
            "listen = []\ntls_listen = [\"127.0.0.1:8443\"]{tls}"
        )),
        Vec::<String>::new()
    );
    let cases = [
        ("listen = []", "server.listen: at least one address"),
        ("tls_listen = \"127.0.0.1:8443\"", "server.tls_listen: needs a certificate"),
        (
            "tls_listen = [\"nowhere\"]\n[server.tls]\ncert_path = \"c\"\nkey_path = \"k\"",
            "server.tls_listen[0]: 'nowhere' is not an address",
        ),
        (
            "listen = \"127.0.0.1:8000\"\ntls_listen = \"127.0.0.1:8000\"\n\
             [server.tls]\ncert_path = \"c\"\nkey_path = \"k\"",
            "server.tls_listen[0]: '127.0.0.1:8000' is also in server.listen",
        ),
        (
            "[server.tls]\ncert_path = \"\"\nkey_path = \"k\"",
            "server.tls.cert_path: must not be empty",
        ),
        (
            "[server.tls]\ncert_path = \"c\"\nkey_path = \"k\"\n\
             [[server.tls.certificates]]\ncert_path = \"c\"\nkey_path = \"k\"\nnames = [\"a.*.test\"]",
            "server.tls.certificates[0].names[0]: 'a.*.test' has a wildcard",
        ),
        (
            "[server.tls]\ncert_path = \"c\"\nkey_path = \"k\"\n\
             [[server.tls.certificates]]\ncert_path = \"c\"\nkey_path = \"k\"\nnames = []",
            "server.tls.certificates[0].names: empty",
        ),
        ("[server.tls]\ncert = \"c\"", "unknown field `cert`"),
    ];
    for (server, want) in cases {
        let errs = config_errors(server);
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:?}");
    }
}

#[test]
fn h2c_and_http2_default_and_restart_is_asked_for_their_changes() {
    let base = |extra: &str| {
        crate::config::parse(&format!(
            "[server]\n{extra}\n\n[[providers]]\nname = \"p\"\ntype = \"openai\"\n\
             base_url = \"http://127.0.0.1:9/v1\"\n\n[[api_keys]]\n\
             key = \"sk-unit-test-key-0001\"\nname = \"k\"\n"
        ))
        .unwrap()
        .process
    };
    let plain = base("");
    assert!(!plain.h2c);
    assert!(plain.tls.is_none() && plain.tls_listen.is_empty());
    let tls = base("tls_listen = \"127.0.0.1:8443\"\nh2c = true\n[server.tls]\ncert_path = \"c\"\nkey_path = \"k\"");
    assert!(tls.h2c);
    assert!(tls.tls.as_ref().unwrap().http2);
    let restart = crate::config::reload::restart_needed(&plain, &tls);
    for setting in ["server.tls_listen", "server.tls", "server.h2c"] {
        assert!(restart.contains(&setting), "{setting}: {restart:?}");
    }
}
