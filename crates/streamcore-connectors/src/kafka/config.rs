//! [`KafkaConfig`]: where the brokers are and how to talk to them (TLS, SASL PLAIN/SCRAM, any
//! librdkafka property). Secrets are kept out of `Debug` output and logs.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::ClientContext;
use std::collections::BTreeMap;
use std::fmt;

/// The SASL mechanisms passed through to librdkafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN`: user name and password (use with TLS).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            other => Err(format!(
                "unknown SASL mechanism `{other}` (expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )),
        }
    }
}

/// Connection settings shared by the Kafka source and sink.
///
/// ```
/// use streamcore_connectors::kafka::{KafkaConfig, SaslMechanism};
/// let config = KafkaConfig::new("127.0.0.1:9092")
///     .tls(Some("/etc/ssl/ca.pem"))
///     .sasl(SaslMechanism::ScramSha512, "app", "s3cret")
///     .set("client.id", "fraud-job");
/// // Secrets never show up in Debug output (or in logs, which use it).
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    brokers: String,
    properties: BTreeMap<String, String>,
}

/// Property names whose values are secrets.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with(".key.pem")
        || k == "sasl.oauthbearer.config"
}

impl KafkaConfig {
    /// Brokers to bootstrap from, `host:port[,host:port…]`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
        }
    }

    /// The bootstrap brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Sets any librdkafka property (`security.protocol`, `ssl.ca.location`,
    /// `session.timeout.ms`, …). Later settings win; the connectors' own settings (offset
    /// handling, transactions) cannot be overridden where correctness depends on them.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Connects over TLS, checking the brokers' certificates against `ca_file` (or the
    /// system's trust store when `None`).
    pub fn tls(mut self, ca_file: Option<&str>) -> Self {
        let protocol = match self.properties.get("security.protocol").map(String::as_str) {
            Some("SASL_PLAINTEXT") | Some("SASL_SSL") => "SASL_SSL",
            _ => "SSL",
        };
        self.properties
            .insert("security.protocol".into(), protocol.into());
        if let Some(ca) = ca_file {
            self.properties
                .insert("ssl.ca.location".into(), ca.to_string());
        }
        self
    }

    /// Authenticates with SASL (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`). Combine with
    /// [`KafkaConfig::tls`] to get `SASL_SSL`; alone it is `SASL_PLAINTEXT`.
    pub fn sasl(mut self, mechanism: SaslMechanism, user: &str, password: &str) -> Self {
        let protocol = match self.properties.get("security.protocol").map(String::as_str) {
            Some("SSL") | Some("SASL_SSL") => "SASL_SSL",
            _ => "SASL_PLAINTEXT",
        };
        self.properties
            .insert("security.protocol".into(), protocol.into());
        self.properties
            .insert("sasl.mechanism".into(), mechanism.name().into());
        self.properties
            .insert("sasl.username".into(), user.to_string());
        self.properties
            .insert("sasl.password".into(), password.to_string());
        self
    }

    /// The librdkafka client configuration: these settings, then the connector's own.
    pub(crate) fn client_config(&self, own: &[(&str, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // librdkafka's `debug` contexts log at debug level: asking for them lets them through.
        c.set_log_level(if self.properties.contains_key("debug") {
            RDKafkaLogLevel::Debug
        } else {
            RDKafkaLogLevel::Warning
        });
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        for (k, v) in own {
            c.set(*k, v);
        }
        c
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let v = if is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &shown)
            .finish()
    }
}

/// Sends librdkafka's log lines and errors to `tracing` (librdkafka itself never logs
/// credentials).
pub(crate) fn log_line(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// A client context that only logs: for the metadata and admin clients.
#[derive(Clone, Default)]
pub(crate) struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "{error}: {reason}");
    }
}
impl rdkafka::consumer::ConsumerContext for LogContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_protocols_combine() {
        let c = KafkaConfig::new("b:9092")
            .sasl(SaslMechanism::Plain, "u", "hunter2")
            .tls(None)
            .set("ssl.key.password", "pw2");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw2"),
            "{shown}"
        );
        assert!(shown.contains("SASL_SSL"), "{shown}");
        assert_eq!("scram-sha-512".parse(), Ok(SaslMechanism::ScramSha512));
    }
}
