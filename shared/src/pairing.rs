//! Pairing cryptography: one-time codes, SPAKE2 bound to the TLS session, and key
//! confirmation. Pure functions and values; the engines drive them over the wire.
//!
//! The SPAKE2 password is the TLS exporter secret followed by the code, so the exchange only
//! succeeds when both ends share one TLS session *and* the code. A relay in the middle holds two
//! sessions with two exporters: relaying the messages fails, and running its own exchange with
//! each side would need the code, which never leaves either machine and is guessed online at
//! most once per attempt.

use rand::{Rng, TryRngCore};
use ring::hmac;
use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};

use crate::identity::{PeerId, sha256};

/// Number of digits in a pairing code.
pub const CODE_DIGITS: usize = 6;

/// A one-time pairing code. Its `Debug` form hides the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(******)")
    }
}

/// Input that is not a pairing code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Wrong number of digits.
    #[error("a code has {CODE_DIGITS} digits, got {0}")]
    Length(usize),
    /// Something other than digits, spaces or dashes.
    #[error("a code has only digits (spaces and dashes are ignored), got {0:?}")]
    NotDigit(char),
}

impl Code {
    /// A fresh uniformly random code from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let n: u32 = rng.random_range(0..10u32.pow(CODE_DIGITS as u32));
        Code(format!("{n:0width$}", width = CODE_DIGITS))
    }

    /// Parse what a person typed: digits, with spaces and dashes ignored.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let mut digits = String::with_capacity(CODE_DIGITS);
        for c in input.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '\t' => {}
                other => return Err(CodeError::NotDigit(other)),
            }
        }
        if digits.len() != CODE_DIGITS {
            return Err(CodeError::Length(digits.len()));
        }
        Ok(Code(digits))
    }

    /// The digits, e.g. `"123456"`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Grouped for reading: `"123 456"`.
    pub fn grouped(&self) -> String {
        let (a, b) = self.0.split_at(CODE_DIGITS / 2);
        format!("{a} {b}")
    }
}

/// Everything both sides must agree on, taken from the TLS session.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Exported keying material of this TLS session.
    pub exporter: [u8; 32],
    /// Client key id.
    pub client_id: PeerId,
    /// Server key id.
    pub server_id: PeerId,
    /// SHA-256 of the client's DER certificate.
    pub client_cert_hash: [u8; 32],
    /// SHA-256 of the server's DER certificate.
    pub server_cert_hash: [u8; 32],
}

impl Binding {
    fn password(&self, code: &Code) -> Password {
        let mut pw = Vec::with_capacity(32 + CODE_DIGITS);
        pw.extend_from_slice(&self.exporter);
        pw.extend_from_slice(code.digits().as_bytes());
        Password::new(&pw)
    }

    fn ids(&self) -> (SpakeId, SpakeId) {
        (
            SpakeId::new(&self.client_id.0),
            SpakeId::new(&self.server_id.0),
        )
    }

    fn transcript(&self, msg_a: &[u8], msg_b: &[u8]) -> [u8; 32] {
        let mut t = Vec::with_capacity(256);
        t.extend_from_slice(b"csc pairing v1");
        for part in [
            &self.client_cert_hash[..],
            &self.server_cert_hash[..],
            &self.exporter[..],
            msg_a,
            msg_b,
        ] {
            t.extend_from_slice(&(part.len() as u32).to_be_bytes());
            t.extend_from_slice(part);
        }
        sha256(&t)
    }
}

/// The SPAKE2 exchange failed to produce a key (malformed peer message).
#[derive(Debug, thiserror::Error)]
#[error("pairing exchange failed: {0}")]
pub struct PakeError(String);

/// Key-confirmation material once SPAKE2 is finished.
pub struct Confirmation {
    key: hmac::Key,
    transcript: [u8; 32],
}

impl Confirmation {
    fn new(shared: &[u8], transcript: [u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, shared),
            transcript,
        }
    }

    fn tag(&self, role: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(role);
        ctx.update(&self.transcript);
        ctx.sign().as_ref().to_vec()
    }

    /// The MAC the client sends.
    pub fn client_mac(&self) -> Vec<u8> {
        self.tag(b"client confirm")
    }

    /// The MAC the server sends.
    pub fn server_mac(&self) -> Vec<u8> {
        self.tag(b"server confirm")
    }

    /// Check the client's MAC in constant time.
    pub fn verify_client(&self, mac: &[u8]) -> bool {
        self.verify(b"client confirm", mac)
    }

    /// Check the server's MAC in constant time.
    pub fn verify_server(&self, mac: &[u8]) -> bool {
        self.verify(b"server confirm", mac)
    }

    fn verify(&self, role: &[u8], mac: &[u8]) -> bool {
        let mut msg = Vec::with_capacity(role.len() + 32);
        msg.extend_from_slice(role);
        msg.extend_from_slice(&self.transcript);
        hmac::verify(&self.key, &msg, mac).is_ok()
    }
}

/// The client's half of one attempt.
pub struct ClientPake {
    state: Spake2<Ed25519Group>,
    msg_a: Vec<u8>,
    binding: Binding,
}

impl ClientPake {
    /// Start an attempt with the code the person typed; send the returned message.
    pub fn start(binding: Binding, code: &Code) -> (Self, Vec<u8>) {
        let (id_a, id_b) = binding.ids();
        let (state, msg_a) = Spake2::<Ed25519Group>::start_a(&binding.password(code), &id_a, &id_b);
        (
            Self {
                state,
                msg_a: msg_a.clone(),
                binding,
            },
            msg_a,
        )
    }

    /// Finish with the server's message.
    pub fn finish(self, msg_b: &[u8]) -> Result<Confirmation, PakeError> {
        let shared = self
            .state
            .finish(msg_b)
            .map_err(|e| PakeError(format!("{e:?}")))?;
        Ok(Confirmation::new(
            &shared,
            self.binding.transcript(&self.msg_a, msg_b),
        ))
    }
}

/// The server's half of one attempt: answer the client's message.
pub fn server_respond(
    binding: &Binding,
    code: &Code,
    msg_a: &[u8],
) -> Result<(Confirmation, Vec<u8>), PakeError> {
    let (id_a, id_b) = binding.ids();
    let (state, msg_b) = Spake2::<Ed25519Group>::start_b(&binding.password(code), &id_a, &id_b);
    let shared = state
        .finish(msg_a)
        .map_err(|e| PakeError(format!("{e:?}")))?;
    let confirmation = Confirmation::new(&shared, binding.transcript(msg_a, &msg_b));
    Ok((confirmation, msg_b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(exporter: u8) -> Binding {
        Binding {
            exporter: [exporter; 32],
            client_id: PeerId([1; 32]),
            server_id: PeerId([2; 32]),
            client_cert_hash: [3; 32],
            server_cert_hash: [4; 32],
        }
    }

    fn run(
        client_binding: Binding,
        server_binding: Binding,
        client_code: &str,
        server_code: &str,
    ) -> (bool, bool) {
        let (c, msg_a) = ClientPake::start(client_binding, &Code::parse(client_code).unwrap());
        let (s_conf, msg_b) =
            server_respond(&server_binding, &Code::parse(server_code).unwrap(), &msg_a).unwrap();
        let c_conf = c.finish(&msg_b).unwrap();
        (
            s_conf.verify_client(&c_conf.client_mac()),
            c_conf.verify_server(&s_conf.server_mac()),
        )
    }

    #[test]
    fn same_code_same_session_confirms() {
        assert_eq!(
            run(binding(9), binding(9), "123456", "123 456"),
            (true, true)
        );
    }

    #[test]
    fn wrong_code_fails_both_ways() {
        assert_eq!(
            run(binding(9), binding(9), "123456", "123457"),
            (false, false)
        );
    }

    #[test]
    fn different_tls_sessions_fail_even_with_the_right_code() {
        assert_eq!(
            run(binding(9), binding(8), "123456", "123456"),
            (false, false)
        );
    }

    #[test]
    fn different_certificates_fail() {
        let mut other = binding(9);
        other.client_cert_hash = [7; 32];
        assert_eq!(run(binding(9), other, "123456", "123456"), (false, false));
    }

    #[test]
    fn client_mac_is_not_accepted_as_server_mac() {
        let (c, msg_a) = ClientPake::start(binding(1), &Code::parse("000001").unwrap());
        let (s, msg_b) =
            server_respond(&binding(1), &Code::parse("000001").unwrap(), &msg_a).unwrap();
        let c = c.finish(&msg_b).unwrap();
        assert!(!c.verify_server(&c.client_mac()));
        assert!(!s.verify_client(&s.server_mac()));
    }

    #[test]
    fn code_parsing() {
        assert_eq!(Code::parse(" 123-456 ").unwrap().digits(), "123456");
        assert_eq!(Code::parse("123 456").unwrap().grouped(), "123 456");
        assert_eq!(Code::parse("12345"), Err(CodeError::Length(5)));
        assert_eq!(Code::parse("1234567"), Err(CodeError::Length(7)));
        assert_eq!(Code::parse("12a456"), Err(CodeError::NotDigit('a')));
        assert_eq!(
            format!("{:?}", Code::parse("123456").unwrap()),
            "Code(******)"
        );
    }

    #[test]
    fn generated_codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200)
            .map(|_| Code::generate().digits().to_string())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        // 200 draws from 10^6 values: a repeat is possible but more than a few means a broken RNG.
        assert!(codes.len() >= 195, "only {} distinct codes", codes.len());
    }

    #[test]
    fn garbage_peer_message_is_an_error_not_a_panic() {
        assert!(server_respond(&binding(1), &Code::parse("000001").unwrap(), b"junk").is_err());
        let (c, _) = ClientPake::start(binding(1), &Code::parse("000001").unwrap());
        assert!(c.finish(&[0u8; 33]).is_err());
    }
}
