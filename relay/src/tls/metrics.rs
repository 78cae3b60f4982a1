//! What `/metrics` says about the relay's certificate, so that an
//! operator can alert before it expires rather than after:
//!
//! - `relay_tls_certificate_expiry_seconds{domain}`: seconds until the
//!   served certificate's notAfter (negative once it has passed), computed
//!   at each scrape; one series per `--domain` (one certificate covers
//!   them all);
//! - `relay_tls_certificates_installed_total{source}`: certificates put
//!   into service: `acme-order` (issued by the CA: the first and every
//!   renewal), `acme-cache` (loaded from the state directory at start),
//!   `files` (`--tls-cert`/`--tls-key`, at start and on every reload);
//! - `relay_tls_certificate_failures_total{source}`: `acme` (an ACME step
//!   that failed and will be retried: an order, the CA unreachable, the
//!   cache) and `files` (changed files that did not load).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{MetricType, counter::Counter, family::Family, gauge::ConstGauge},
    registry::Registry,
};
use rustls::pki_types::{CertificateDer, pem::PemObject as _};

/// Where a certificate in service came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    AcmeOrder,
    AcmeCache,
    Files,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Self::AcmeOrder => "acme-order",
            Self::AcmeCache => "acme-cache",
            Self::Files => "files",
        }
    }
}

/// What can fail while keeping a certificate in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Acme,
    Files,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// The certificate metrics, shared by the certificate source that updates
/// them and the registry that reads them.
#[derive(Debug, Clone)]
pub struct TlsMetrics {
    expiry: Arc<Expiry>,
    installed: Family<SourceLabels, Counter>,
    failures: Family<SourceLabels, Counter>,
}

impl TlsMetrics {
    pub fn new(domains: &[String]) -> Self {
        Self {
            expiry: Arc::new(Expiry {
                domains: domains.to_vec(),
                not_after: Mutex::new(None),
            }),
            installed: Family::default(),
            failures: Family::default(),
        }
    }

    /// Registers the three metrics under `relay_`, each series that can
    /// occur with `sources` at zero, so that a dashboard sees them before
    /// the first event.
    pub fn register(&self, registry: &mut Registry, sources: &[Source], failure: Failure) {
        for source in sources {
            let _ = self.installed.get_or_create(&source_labels(source.label()));
        }
        let _ = self
            .failures
            .get_or_create(&source_labels(failure_label(failure)));
        let registry = registry.sub_registry_with_prefix("relay");
        registry.register(
            "tls_certificates_installed",
            "TLS certificates put into service, by source (acme-order: issued by the CA, first or renewal; acme-cache: loaded from the state directory; files: --tls-cert/--tls-key loaded or reloaded)",
            self.installed.clone(),
        );
        registry.register(
            "tls_certificate_failures",
            "Failures keeping the TLS certificate current, by source (acme: an ACME step that failed and is retried; files: changed certificate files that did not load)",
            self.failures.clone(),
        );
        registry.register_collector(Box::new(self.expiry.clone()));
    }

    /// A certificate (its chain, leaf first) went into service.
    pub fn installed(&self, source: Source, chain: &[CertificateDer<'_>]) {
        self.count_installed(source);
        if let Some(leaf) = chain.first() {
            self.observe(leaf);
        }
    }

    /// A certificate went into service whose expiry comes by
    /// [`TlsMetrics::observe_pem`] (rustls-acme's events do not carry it).
    pub fn count_installed(&self, source: Source) {
        self.installed
            .get_or_create(&source_labels(source.label()))
            .inc();
    }

    /// Sets the expiry from a certificate's PEM (a private key before the
    /// chain, as rustls-acme keeps it, is skipped).
    pub fn observe_pem(&self, pem: &[u8]) {
        if let Some(Ok(leaf)) = CertificateDer::pem_slice_iter(pem).next() {
            self.observe(&leaf);
        }
    }

    pub fn failed(&self, failure: Failure) {
        self.failures
            .get_or_create(&source_labels(failure_label(failure)))
            .inc();
    }

    fn observe(&self, leaf: &CertificateDer<'_>) {
        match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => {
                let not_after = cert.validity().not_after.timestamp();
                *self
                    .expiry
                    .not_after
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(not_after);
            }
            Err(error) => {
                tracing::warn!(%error, "the TLS certificate in service does not parse; its expiry is not in /metrics");
            }
        }
    }

    /// Seconds from now until the served certificate's notAfter (tests).
    pub fn expiry_seconds(&self) -> Option<i64> {
        self.expiry.seconds_left(SystemTime::now())
    }
}

fn source_labels(source: &'static str) -> SourceLabels {
    SourceLabels { source }
}

fn failure_label(failure: Failure) -> &'static str {
    match failure {
        Failure::Acme => "acme",
        Failure::Files => "files",
    }
}

/// `relay_tls_certificate_expiry_seconds`, computed at each scrape.
#[derive(Debug)]
struct Expiry {
    domains: Vec<String>,
    /// The served certificate's notAfter, in seconds since the epoch.
    not_after: Mutex<Option<i64>>,
}

impl Expiry {
    fn seconds_left(&self, now: SystemTime) -> Option<i64> {
        let not_after = (*self
            .not_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner))?;
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Some(not_after.saturating_sub(now))
    }
}

impl Collector for Expiry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(seconds) = self.seconds_left(SystemTime::now()) else {
            // No certificate yet (the first ACME order is under way).
            return Ok(());
        };
        let gauge = ConstGauge::new(seconds);
        let mut family = encoder.encode_descriptor(
            "tls_certificate_expiry_seconds",
            "Seconds until the served TLS certificate's notAfter (negative once expired), per domain",
            None,
            MetricType::Gauge,
        )?;
        for domain in &self.domains {
            let labels = [("domain", domain.as_str())];
            gauge.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: (i32, u8, u8)) -> (String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["relay.example.org".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.self_signed(&key).expect("certificate");
        (
            format!("{}{}", key.serialize_pem(), cert.pem()),
            cert.der().to_vec(),
        )
    }

    fn scrape(metrics: &TlsMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(
            &mut registry,
            &[Source::AcmeOrder, Source::AcmeCache],
            Failure::Acme,
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text
    }

    #[test]
    fn expiry_is_the_seconds_until_not_after_per_domain_and_counters_start_at_zero() {
        let metrics = TlsMetrics::new(&["a.example.org".to_owned(), "b.example.org".to_owned()]);
        let before = scrape(&metrics);
        assert!(
            !before.contains("relay_tls_certificate_expiry_seconds{"),
            "an expiry before any certificate: {before}"
        );
        assert!(
            before.contains("relay_tls_certificates_installed_total{source=\"acme-order\"} 0")
                && before.contains("relay_tls_certificate_failures_total{source=\"acme\"} 0"),
            "{before}"
        );

        // rustls-acme's PEM: the key first, then the chain.
        let (pem, _) = certificate((2001, 1, 1));
        metrics.observe_pem(pem.as_bytes());
        let expired = metrics.expiry_seconds().expect("an expiry");
        assert!(expired < 0, "a certificate of 2001 expired: {expired}");

        let (_, der) = certificate((2200, 1, 1));
        metrics.installed(Source::AcmeOrder, &[CertificateDer::from(der)]);
        metrics.failed(Failure::Acme);
        let left = metrics.expiry_seconds().expect("an expiry");
        assert!(left > 100 * 365 * 86_400, "2200 is far: {left}");
        let after = scrape(&metrics);
        for line in [
            "relay_tls_certificate_expiry_seconds{domain=\"a.example.org\"} ",
            "relay_tls_certificate_expiry_seconds{domain=\"b.example.org\"} ",
            "relay_tls_certificates_installed_total{source=\"acme-order\"} 1",
            "relay_tls_certificates_installed_total{source=\"acme-cache\"} 0",
            "relay_tls_certificate_failures_total{source=\"acme\"} 1",
        ] {
            assert!(after.contains(line), "no {line:?} in {after}");
        }
    }
}
