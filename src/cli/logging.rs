//! Logs on stderr: text for people (coloured only on a terminal) or one JSON object per line, with
//! the level filter from `XACCT_LOG` (else the command's default).
//!
//! Writing a log line never fails and never panics: a closed or broken stderr (a pipe whose reader
//! went away, say) drops the line, so that shutting down still works whatever happened to stderr.
//!
//! A JSON line is
//! `{"timestamp":…,"level":"INFO","target":"xacct::engine::apply","message":…,"fields":{…},"span":{…},"spans":[…]}`:
//! `fields` holds the event's own fields, `span` the fields of the spans it happened in (outermost
//! first, an inner span's field winning), e.g. `{"kind":"CrossAccountGrant","namespace":"batch","name":"reads"}`
//! in a reconcile, and `spans` their names. `fields`, `span` and `spans` are left out when empty.

use std::io::{self, IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::LogFormat;

/// The environment variable holding the level filter (`info`, `xacct=debug`, ...).
pub const FILTER_ENV: &str = "XACCT_LOG";

/// Installs the process's logger: `format` on stderr, levels from `XACCT_LOG` or else
/// `default_filter` (e.g. `info`). Does nothing when a logger is already installed. A `XACCT_LOG`
/// that is not a valid filter is reported (as a warning) and `default_filter` used instead.
pub fn init(format: LogFormat, default_filter: &str) {
    let (filter, invalid) = filter(std::env::var(FILTER_ENV).ok().as_deref(), default_filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        // Its own error report is an `eprintln!`, which panics on a closed stderr.
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init(),
    };
    if let (Ok(()), Some(error)) = (installed, invalid) {
        tracing::warn!(
            filter_env = FILTER_ENV,
            %error,
            default = default_filter,
            "invalid log filter; using the default"
        );
    }
}

/// The filter of `value` (the environment variable's value), or of `default` when it is unset,
/// empty or invalid (with the reason).
fn filter(value: Option<&str>, default: &str) -> (EnvFilter, Option<String>) {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => (EnvFilter::new(default), None),
        Some(v) => match EnvFilter::try_new(v) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(default), Some(format!("{v:?}: {e}"))),
        },
    }
}

/// Colour only for a person at a terminal, and not when `NO_COLOR` is set (no-color.org).
fn colour() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Stderr, whose write errors (EPIPE on a closed pipe, ...) are dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One `write_all` under the lock: a line is not interleaved with another thread's.
        let _ = io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Writes `text` to stderr, dropping it when stderr is closed (`eprint!` would panic).
pub fn eprint(text: &str) {
    let _ = Stderr.write_all(text.as_bytes());
}

/// The JSON event format (see the module documentation). Needs [`JsonFields`] as the span field
/// formatter: span fields are read back from it.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);

        let mut line = Map::new();
        let mut timestamp = String::new();
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            line.insert("timestamp".into(), Value::String(timestamp));
        }
        line.insert("level".into(), meta.level().as_str().into());
        let target = fields.log_target.take();
        line.insert(
            "target".into(),
            target.unwrap_or_else(|| meta.target().to_string()).into(),
        );
        if let Some(message) = fields.message.take() {
            line.insert("message".into(), Value::String(message));
        }
        if !fields.map.is_empty() {
            line.insert("fields".into(), Value::Object(fields.map));
        }

        let mut span_fields = Map::new();
        let mut names = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                names.push(Value::from(span.name()));
                let extensions = span.extensions();
                let map = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|f| serde_json::from_str::<Map<String, Value>>(f).ok());
                span_fields.extend(map.unwrap_or_default());
            }
        }
        if !span_fields.is_empty() {
            line.insert("span".into(), Value::Object(span_fields));
        }
        if !names.is_empty() {
            line.insert("spans".into(), Value::Array(names));
        }

        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An event's fields as JSON values; `message` apart, and the `log` crate's metadata (records
/// forwarded from `log`) turned back into a target.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    log_target: Option<String>,
    map: Map<String, Value>,
}

impl EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            "log.target" => self.log_target = value.as_str().map(str::to_string),
            "log.module_path" | "log.file" | "log.line" => {}
            name => {
                self.map.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn json_lines(log: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_writer(move || out.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("UTF-8");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    #[test]
    fn a_json_line_has_the_event_and_the_fields_of_every_span_it_is_in() {
        let lines = json_lines(|| {
            tracing::info!(count = 3, "outside");
            let outer = tracing::info_span!("reconcile", kind = "CrossAccountGrant", name = "x");
            let _outer = outer.enter();
            let inner = tracing::info_span!("apply", namespace = "batch", name = "reads");
            let _inner = inner.enter();
            tracing::warn!(target = "arn:aws:s3:::lake", ok = true, "wrote \"it\"\n");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "outside");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["fields"]["count"], 3);
        assert!(lines[0].get("span").is_none());
        assert!(lines[0]["timestamp"].as_str().is_some_and(|t| t.len() > 10));

        let line = &lines[1];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "wrote \"it\"\n");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["fields"]["target"], "arn:aws:s3:::lake");
        assert_eq!(line["fields"]["ok"], true);
        assert_eq!(line["span"]["kind"], "CrossAccountGrant");
        assert_eq!(line["span"]["namespace"], "batch");
        assert_eq!(line["span"]["name"], "reads", "the inner span's field wins");
        assert_eq!(line["spans"], serde_json::json!(["reconcile", "apply"]));
    }

    #[test]
    fn an_invalid_or_empty_filter_falls_back_to_the_default() {
        assert!(filter(None, "info").1.is_none());
        assert!(filter(Some("  "), "info").1.is_none());
        assert!(filter(Some("xacct=debug,warn"), "info").1.is_none());
        let (_, invalid) = filter(Some("xacct=loud"), "info");
        assert!(invalid.is_some_and(|e| e.contains("xacct=loud")));
    }

    #[test]
    fn writing_to_stderr_never_fails() {
        assert!(Stderr.write_all(b"").is_ok());
        assert!(Stderr.flush().is_ok());
    }
}
