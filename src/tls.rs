//! TLS for the HTTPS clients (webhooks, S3-compatible endpoints): rustls with
//! the ring provider, one process-wide default installed before the first
//! client is built. Certificates are checked against the system's trust store
//! (reqwest's platform verifier: `ca-certificates` on Debian, which the
//! package depends on). PostgreSQL connections build their own configuration
//! (`db::postgres`).

use std::sync::Once;

/// Make ring the process's default rustls provider; idempotent, and a
/// provider some other code installed first is kept.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means a default is already installed, which is what is wanted.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_default_provider_is_installed_and_a_second_call_keeps_it() {
        super::install_crypto_provider();
        let first = rustls::crypto::CryptoProvider::get_default().expect("a default provider");
        super::install_crypto_provider();
        let second = rustls::crypto::CryptoProvider::get_default().expect("still a default provider");
        assert!(
            std::sync::Arc::ptr_eq(first, second),
            "the second call keeps the first provider"
        );
    }
}
