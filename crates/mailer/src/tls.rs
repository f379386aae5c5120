//! TLS for relays: the system's root store plus a profile's own CA
//! certificates, and optionally a certificate name other than the host.

use std::sync::{Arc, OnceLock};

use herald_domain::{InvalidInput, TlsTrust};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Parses PEM certificates; refuses text without one or with a bad one.
pub fn parse_ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, InvalidInput> {
    let field = "trust.extra_ca_pem";
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InvalidInput::new(field, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(InvalidInput::new(field, "holds no certificate"));
    }
    let mut store = RootCertStore::empty();
    for c in &certs {
        store.add(c.clone()).map_err(|e| {
            InvalidInput::new(field, format!("holds a certificate rustls refuses: {e}"))
        })?;
    }
    Ok(certs)
}

/// The system's trusted roots (the OS certificate store), loaded once; when
/// the store is empty or unreadable, Mozilla's roots as bundled by
/// webpki-roots.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "reading the system's certificate store");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// A connector trusting the system roots and the profile's extra CAs.
pub fn connector(trust: &TlsTrust) -> Result<TlsConnector, InvalidInput> {
    let mut roots = system_roots().clone();
    if let Some(pem) = &trust.extra_ca_pem {
        for cert in parse_ca_pem(pem.as_str())? {
            // parse_ca_pem already proved each one is accepted.
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InvalidInput::new("trust", format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the server's certificate must carry.
pub fn server_name(host: &str, trust: &TlsTrust) -> Result<ServerName<'static>, InvalidInput> {
    let name = trust
        .accept_host_name
        .as_ref()
        .map(|n| n.as_str())
        .unwrap_or(host);
    ServerName::try_from(name.to_owned()).map_err(|_| {
        InvalidInput::new(
            "host",
            format!("{name:?} cannot be checked against a certificate"),
        )
    })
}
