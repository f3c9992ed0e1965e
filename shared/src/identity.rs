//! Identities: each side's Ed25519 key and self-signed certificate, and the ids derived
//! from them.
//!
//! An id is the SHA-256 of the certificate's SubjectPublicKeyInfo, so it survives a
//! re-issued certificate but not a new key. Owns the `identity.key` and `identity.crt` files.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fsio::{StateError, ensure_private_dir, write_atomic};

/// SHA-256 of a public key (SPKI DER): the `server_id` or `client_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

impl PeerId {
    /// The id of a DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki(spki: &[u8]) -> Self {
        Self(sha256(spki))
    }

    /// The id of the key in a DER certificate.
    pub fn from_cert(cert: &CertificateDer<'_>) -> Result<Self, webpki::Error> {
        let ee = webpki::EndEntityCert::try_from(cert)?;
        Ok(Self::from_spki(ee.subject_public_key_info().as_ref()))
    }

    /// Short form for people: the first four bytes as `3F2A-91C0`.
    pub fn short(&self) -> String {
        let h = hex::encode_upper(&self.0[..4]);
        format!("{}-{}", &h[..4], &h[4..])
    }

    /// Full lowercase hex form (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `query` (full id or a prefix of at least 4 hex digits, any case, dashes
    /// and spaces ignored) names this id.
    pub fn matches(&self, query: &str) -> bool {
        let q = normalise_id_query(query);
        q.len() >= 4 && self.to_hex().starts_with(&q)
    }
}

/// Lower-case `query` and drop dashes and spaces, for id prefix matching.
pub fn normalise_id_query(query: &str) -> String {
    query
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | ':'))
        .flat_map(|c| c.to_lowercase())
        .collect()
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

/// A full id could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("not a full id (64 hex digits): {0:?}")]
pub struct ParseIdError(String);

impl FromStr for PeerId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(normalise_id_query(s), &mut out)
            .map_err(|_| ParseIdError(s.to_string()))?;
        Ok(Self(out))
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One side's key pair and certificate.
pub struct Identity {
    key_der: PrivatePkcs8KeyDer<'static>,
    cert: CertificateDer<'static>,
    id: PeerId,
    cert_hash: [u8; 32],
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// File name of the private key inside a state folder.
pub const KEY_FILE: &str = "identity.key";
/// File name of the certificate inside a state folder.
pub const CERT_FILE: &str = "identity.crt";

impl Identity {
    /// A fresh Ed25519 identity whose certificate carries `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, rcgen::Error> {
        Self::generate_with_pem(common_name).map(|(identity, _, _)| identity)
    }

    /// A fresh identity plus its key and certificate in PEM form, for saving.
    fn generate_with_pem(common_name: &str) -> Result<(Self, String, String), rcgen::Error> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let (identity, cert_pem) = Self::self_sign(&key, common_name)?;
        Ok((identity, key.serialize_pem(), cert_pem))
    }

    /// Issue a self-signed certificate for `key`; returns the identity and the PEM certificate.
    fn self_sign(key: &rcgen::KeyPair, common_name: &str) -> Result<(Self, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        // A long validity: trust comes from the pinned key, not from dates.
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(4000, 1, 1);
        let cert = params.self_signed(key)?;
        let key_der = PrivatePkcs8KeyDer::from(key.serialize_der());
        let identity = Self::from_parts(key_der, cert.der().clone())
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        Ok((identity, cert.pem()))
    }

    fn from_parts(
        key_der: PrivatePkcs8KeyDer<'static>,
        cert: CertificateDer<'static>,
    ) -> Result<Self, webpki::Error> {
        let id = PeerId::from_cert(&cert)?;
        let cert_hash = sha256(cert.as_ref());
        Ok(Self {
            key_der,
            cert,
            id,
            cert_hash,
        })
    }

    /// Load the identity from `dir`, creating it (and the folder) on first use.
    pub fn load_or_create(dir: &Path, common_name: &str) -> Result<Self, StateError> {
        ensure_private_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        match crate::fsio::read_private(&key_path)? {
            Some(key_pem) => {
                let corrupt = |path: &Path, reason: String| StateError::Corrupt {
                    path: path.to_path_buf(),
                    reason,
                };
                let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
                    Ok(PrivateKeyDer::Pkcs8(k)) => k,
                    Ok(_) => return Err(corrupt(&key_path, "not a PKCS#8 key".into())),
                    Err(e) => return Err(corrupt(&key_path, e.to_string())),
                };
                let key_pair = rcgen::KeyPair::try_from(&PrivateKeyDer::Pkcs8(key.clone_key()))
                    .map_err(|e| corrupt(&key_path, e.to_string()))?;
                let Some(cert_pem) = crate::fsio::read_private(&cert_path)? else {
                    // The key is the identity; a missing certificate (a crash during the first
                    // start, before any pairing) is issued again from it. Ids stay the same;
                    // tokens bound to an old certificate would need pairing again.
                    let (identity, cert_pem) = Self::self_sign(&key_pair, common_name)
                        .map_err(|e| corrupt(&key_path, e.to_string()))?;
                    write_atomic(&cert_path, cert_pem.as_bytes())?;
                    return Ok(identity);
                };
                let cert = CertificateDer::from_pem_slice(&cert_pem)
                    .map_err(|e| corrupt(&cert_path, e.to_string()))?;
                let identity = Self::from_parts(key, cert)
                    .map_err(|e| corrupt(&cert_path, format!("{e:?}")))?;
                // The certificate must belong to the key, or TLS would fail in confusing ways.
                let key_id = Self::self_sign(&key_pair, common_name)
                    .map_err(|e| corrupt(&key_path, e.to_string()))?
                    .0
                    .id;
                if key_id != identity.id {
                    return Err(corrupt(
                        &cert_path,
                        "certificate does not match identity.key".into(),
                    ));
                }
                Ok(identity)
            }
            None => {
                if cert_path.exists() {
                    return Err(StateError::Corrupt {
                        path: key_path,
                        reason: "missing, but identity.crt exists".into(),
                    });
                }
                let (identity, key_pem, cert_pem) =
                    Self::generate_with_pem(common_name).map_err(|e| StateError::Corrupt {
                        path: key_path.clone(),
                        reason: format!("cannot generate a key: {e}"),
                    })?;
                // Key first: a crash before the certificate is written is repaired on next start.
                write_atomic(&key_path, key_pem.as_bytes())?;
                write_atomic(&cert_path, cert_pem.as_bytes())?;
                Ok(identity)
            }
        }
    }

    /// The id derived from this identity's public key.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The DER certificate presented in TLS.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// SHA-256 of the DER certificate (the token's `cnf` thumbprint).
    pub fn cert_hash(&self) -> [u8; 32] {
        self.cert_hash
    }

    /// A copy of the private key for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_and_matching() {
        let id = PeerId([
            0x3f, 0x2a, 0x91, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
            19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
        ]);
        assert_eq!(id.short(), "3F2A-91C0");
        assert!(id.matches("3F2A-91C0"));
        assert!(id.matches("3f2a"));
        assert!(!id.matches("3f2"));
        assert!(!id.matches("3f2b"));
        assert_eq!(id.to_hex().parse::<PeerId>().unwrap(), id);
    }

    #[test]
    fn identity_persists_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path(), "test").unwrap();
        let b = Identity::load_or_create(dir.path(), "other").unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.cert(), b.cert());
        #[cfg(unix)]
        for f in [KEY_FILE, CERT_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let c = Identity::load_or_create(tempfile::tempdir().unwrap().path(), "test").unwrap();
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn mismatched_certificate_is_corrupt() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        Identity::load_or_create(d1.path(), "a").unwrap();
        Identity::load_or_create(d2.path(), "b").unwrap();
        std::fs::copy(d2.path().join(CERT_FILE), d1.path().join(CERT_FILE)).unwrap();
        let err = Identity::load_or_create(d1.path(), "a").unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn missing_certificate_is_reissued_from_the_key() {
        let d = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(d.path(), "a").unwrap();
        std::fs::remove_file(d.path().join(CERT_FILE)).unwrap();
        let b = Identity::load_or_create(d.path(), "a").unwrap();
        assert_eq!(a.id(), b.id());
        assert!(d.path().join(CERT_FILE).exists());
    }

    #[test]
    fn garbage_key_is_corrupt_and_kept() {
        let d = tempfile::tempdir().unwrap();
        Identity::load_or_create(d.path(), "a").unwrap();
        let p = d.path().join(KEY_FILE);
        std::fs::write(&p, b"garbage").unwrap();
        let err = Identity::load_or_create(d.path(), "a").unwrap_err();
        assert!(err.to_string().contains("identity.key"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"garbage");
    }
}
