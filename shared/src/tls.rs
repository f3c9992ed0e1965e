//! TLS for both sides: TLS 1.3 only, our ALPN, no session resumption, mutual authentication
//! with self-signed certificates.
//!
//! Owns the certificate verifiers. They check handshake signatures as usual but replace the
//! web PKI with our trust model: the server accepts any client key (the token and the registry
//! decide), and the client accepts either any server key (while pairing: SPAKE2 decides) or
//! exactly the pinned server id.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::connection::Encoding;
use crate::identity::{Identity, PeerId};

/// The ALPN protocol id of this protocol, version 1: every message is JSON.
pub const ALPN: &[u8] = b"csc/1";

/// The ALPN protocol id of version 2: the same messages, the hot ones in the compact
/// encoding ([`crate::compact`]). Both sides offer it first; a peer that knows only
/// `csc/1` gets `csc/1`, and JSON.
pub const ALPN_COMPACT: &[u8] = b"csc/2";

/// What a negotiated ALPN id means for the messages a side writes; `None` when it is not
/// ours (or none was negotiated).
pub fn encoding(alpn: Option<&[u8]>) -> Option<Encoding> {
    match alpn {
        Some(ALPN_COMPACT) => Some(Encoding::Compact),
        Some(ALPN) => Some(Encoding::Json),
        _ => None,
    }
}

/// Label of the TLS exporter (RFC 8446 §7.5) that binds pairing to one TLS session.
pub const PAIRING_EXPORTER_LABEL: &[u8] = b"EXPORTER-csc-pairing-v1";

/// The crypto provider everything here uses (`ring`).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Server-side TLS configuration for `identity`.
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyClientKey { algs: algorithms() }))
        .with_single_cert(vec![identity.cert().clone()], identity.private_key())?;
    // The server's order decides: the compact encoding whenever the client offers it.
    config.alpn_protocols = vec![ALPN_COMPACT.to_vec(), ALPN.to_vec()];
    // Every connection is a full handshake that proves both keys.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Which server keys a client connection accepts.
#[derive(Debug, Clone, Copy)]
pub enum ServerTrust {
    /// Any key (pairing, discovery). The caller reads the id from the session afterwards.
    Any,
    /// Exactly this server id, compared byte for byte.
    Pinned(PeerId),
}

/// Client-side TLS configuration presenting `identity` and accepting servers per `trust`,
/// offering both encodings.
pub fn client_config(
    identity: &Identity,
    trust: ServerTrust,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    client_config_offering(identity, trust, true)
}

/// [`client_config`], offering the compact encoding only when `compact` is set (without it,
/// the client is what a `csc/1`-only client was).
pub fn client_config_offering(
    identity: &Identity,
    trust: ServerTrust,
    compact: bool,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerKeyVerifier {
            trust,
            algs: algorithms(),
        }))
        .with_client_auth_cert(vec![identity.cert().clone()], identity.private_key())?;
    config.alpn_protocols = if compact {
        vec![ALPN_COMPACT.to_vec(), ALPN.to_vec()]
    } else {
        vec![ALPN.to_vec()]
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The SNI name clients send. Certificates carry no names; this only fills the field.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("csc.invalid").expect("static name is valid")
}

/// The server presented a key other than the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("server identity mismatch: expected {}, got {}", expected.short(), found.short())]
pub struct IdentityMismatch {
    /// The pinned id.
    pub expected: PeerId,
    /// The id the server presented.
    pub found: PeerId,
}

/// Find an [`IdentityMismatch`] inside an error returned by a TLS connect.
pub fn identity_mismatch(err: &std::io::Error) -> Option<&IdentityMismatch> {
    let rustls_err = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    match rustls_err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<IdentityMismatch>()
        }
        _ => None,
    }
}

/// Facts about an established session that the protocol binds to.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Id of the peer's key.
    pub peer_id: PeerId,
    /// SHA-256 of the peer's DER certificate.
    pub peer_cert_hash: [u8; 32],
    /// 32 bytes exported under [`PAIRING_EXPORTER_LABEL`]; differs for every TLS session.
    pub exporter: [u8; 32],
}

/// Read the peer's certificate and the exporter secret from an established connection.
pub fn session_info(
    conn: &rustls::CommonState,
    exporter_source: &dyn Exporter,
) -> Option<SessionInfo> {
    let cert = conn.peer_certificates()?.first()?;
    let peer_id = PeerId::from_cert(cert).ok()?;
    let mut exporter = [0u8; 32];
    exporter_source
        .export(&mut exporter, PAIRING_EXPORTER_LABEL)
        .ok()?;
    Some(SessionInfo {
        peer_id,
        peer_cert_hash: crate::identity::sha256(cert.as_ref()),
        exporter,
    })
}

/// Something that can export keying material (client or server connection).
pub trait Exporter {
    /// Fill `out` with keying material for `label`.
    fn export(&self, out: &mut [u8], label: &[u8]) -> Result<(), rustls::Error>;
}

impl Exporter for rustls::ClientConnection {
    fn export(&self, out: &mut [u8], label: &[u8]) -> Result<(), rustls::Error> {
        self.export_keying_material(out, label, None).map(|_| ())
    }
}

impl Exporter for rustls::ServerConnection {
    fn export(&self, out: &mut [u8], label: &[u8]) -> Result<(), rustls::Error> {
        self.export_keying_material(out, label, None).map(|_| ())
    }
}

/// Session facts of a client-side stream.
pub fn client_session(
    stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Option<SessionInfo> {
    let (_, conn) = stream.get_ref();
    session_info(conn, conn)
}

/// Session facts of a server-side stream.
pub fn server_session(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Option<SessionInfo> {
    let (_, conn) = stream.get_ref();
    session_info(conn, conn)
}

#[derive(Debug)]
struct AnyClientKey {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientKey {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Any well-formed key is welcome to try; the token or pairing decides what it may do.
        PeerId::from_cert(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[derive(Debug)]
struct ServerKeyVerifier {
    trust: ServerTrust,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = PeerId::from_cert(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        match self.trust {
            ServerTrust::Any => Ok(ServerCertVerified::assertion()),
            ServerTrust::Pinned(expected) if expected.0 == found.0 => {
                Ok(ServerCertVerified::assertion())
            }
            ServerTrust::Pinned(expected) => {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(IdentityMismatch { expected, found })),
                )))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
