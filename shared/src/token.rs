//! Session tokens: HS256 JWTs issued by the server after pairing.
//!
//! Owns claim layout and validation. A token names the client (`sub`), the server (`iss`) and
//! carries the SHA-256 thumbprint of the client's certificate in `cnf` (RFC 8705), so a copied
//! token is useless without the client's private key.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

use crate::identity::PeerId;
use crate::message::RepairReason;

/// The `aud` of every session token.
pub const AUDIENCE: &str = "csc-session";

/// Proof-of-possession confirmation claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cnf {
    /// base64url SHA-256 of the client's DER certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the server id (hex).
    pub iss: String,
    /// Subject: the client id (hex).
    pub sub: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    /// Binding to the client certificate.
    pub cnf: Cnf,
    /// Pairing id: changes at every pairing, so tokens from an earlier pairing are void.
    pub pid: String,
}

/// The thumbprint format used in `cnf`.
pub fn thumbprint(cert_hash: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cert_hash)
}

/// The server's secret for signing tokens (32 random bytes).
#[derive(Clone)]
pub struct TokenKey(pub [u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A fresh random key from the operating system.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.unwrap_err().try_fill_bytes(&mut k).ok();
        Self(k)
    }
}

/// Issues and checks tokens for one server.
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    server_id: PeerId,
    validation: Validation,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The encoded JWT.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

impl TokenAuthority {
    /// An authority signing with `key` on behalf of `server_id`.
    pub fn new(key: &TokenKey, server_id: PeerId) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[server_id.to_hex()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&key.0),
            decoding: DecodingKey::from_secret(&key.0),
            server_id,
            validation,
        }
    }

    /// Issue a token for `client_id` holding the certificate with `cert_hash`, valid for `ttl`.
    pub fn issue(
        &self,
        client_id: PeerId,
        cert_hash: &[u8; 32],
        pairing_id: &str,
        ttl: std::time::Duration,
    ) -> Result<Issued, jsonwebtoken::errors::Error> {
        let now = crate::unix_now();
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.unwrap_err().try_fill_bytes(&mut jti).ok();
        let claims = Claims {
            iss: self.server_id.to_hex(),
            sub: client_id.to_hex(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs().max(1)),
            jti: hex::encode(jti),
            cnf: Cnf {
                x5t_s256: thumbprint(cert_hash),
            },
            pid: pairing_id.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(Issued { token, claims })
    }

    /// Check signature, `exp`, `aud`, `iss`, and that the token belongs to the presented key
    /// and certificate. The registry check (is the client still paired?) is the caller's.
    pub fn verify(
        &self,
        token: &str,
        presented_id: PeerId,
        presented_cert_hash: &[u8; 32],
    ) -> Result<Claims, RepairReason> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => RepairReason::Expired,
                _ => RepairReason::Invalid,
            })?;
        let claims = data.claims;
        if claims.sub != presented_id.to_hex()
            || claims.cnf.x5t_s256 != thumbprint(presented_cert_hash)
        {
            return Err(RepairReason::KeyMismatch);
        }
        Ok(claims)
    }
}

/// A fresh random pairing id (16 hex digits).
pub fn new_pairing_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.unwrap_err().try_fill_bytes(&mut b).ok();
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn authority() -> TokenAuthority {
        TokenAuthority::new(&TokenKey([5; 32]), PeerId([9; 32]))
    }

    #[test]
    fn issue_and_verify() {
        let a = authority();
        let issued = a
            .issue(PeerId([1; 32]), &[2; 32], "p1", Duration::from_secs(60))
            .unwrap();
        let claims = a.verify(&issued.token, PeerId([1; 32]), &[2; 32]).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.aud, AUDIENCE);
    }

    #[test]
    fn other_key_or_cert_is_key_mismatch() {
        let a = authority();
        let t = a
            .issue(PeerId([1; 32]), &[2; 32], "p1", Duration::from_secs(60))
            .unwrap()
            .token;
        assert_eq!(
            a.verify(&t, PeerId([3; 32]), &[2; 32]),
            Err(RepairReason::KeyMismatch)
        );
        assert_eq!(
            a.verify(&t, PeerId([1; 32]), &[4; 32]),
            Err(RepairReason::KeyMismatch)
        );
    }

    #[test]
    fn other_server_or_key_is_invalid() {
        let t = authority()
            .issue(PeerId([1; 32]), &[2; 32], "p1", Duration::from_secs(60))
            .unwrap()
            .token;
        let other_key = TokenAuthority::new(&TokenKey([6; 32]), PeerId([9; 32]));
        assert_eq!(
            other_key.verify(&t, PeerId([1; 32]), &[2; 32]),
            Err(RepairReason::Invalid)
        );
        let other_server = TokenAuthority::new(&TokenKey([5; 32]), PeerId([8; 32]));
        assert_eq!(
            other_server.verify(&t, PeerId([1; 32]), &[2; 32]),
            Err(RepairReason::Invalid)
        );
    }

    #[test]
    fn alg_none_and_tampering_are_invalid() {
        let a = authority();
        let t = a
            .issue(PeerId([1; 32]), &[2; 32], "p1", Duration::from_secs(60))
            .unwrap()
            .token;
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            a.verify(&unsigned, PeerId([1; 32]), &[2; 32]),
            Err(RepairReason::Invalid)
        );
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["exp"] = serde_json::json!(u32::MAX);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(
            a.verify(&forged, PeerId([1; 32]), &[2; 32]),
            Err(RepairReason::Invalid)
        );
        assert_eq!(
            a.verify("not.a.jwt", PeerId([1; 32]), &[2; 32]),
            Err(RepairReason::Invalid)
        );
    }

    #[test]
    fn expired_is_expired() {
        let a = authority();
        let mut claims = a
            .issue(PeerId([1; 32]), &[2; 32], "p1", Duration::from_secs(60))
            .unwrap()
            .claims;
        claims.iat -= 120;
        claims.exp = crate::unix_now() - 1;
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.encoding).unwrap();
        assert_eq!(
            a.verify(&t, PeerId([1; 32]), &[2; 32]),
            Err(RepairReason::Expired)
        );
    }
}
