//! A fault-injecting HTTP proxy between the tool and the AWS emulator: it forwards every request to
//! moto, except that a configurable fraction of the requests of chosen services and operations get a
//! fault instead, answered the way AWS answers it (the service's throttling error in its own
//! protocol, a 500, a dropped connection, added latency, or no answer at all). STS is left alone
//! unless a plan names it.
//!
//! Whether a request gets a fault is decided from the seed, the request's content (method, path,
//! query, `X-Amz-Target`, body; never the signature or date) and how many times that same request was
//! seen before (with names that change from run to run, such as KMS key ids, read as stable
//! ones). Concurrent requests can arrive in any order, so a draw from one shared random
//! sequence would change from run to run; keyed this way, the n-th sending of a given request gets
//! the same answer every time, which keeps a test's faults reproducible.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use xacct::aws::ConnectorOptions;

/// What the proxy does instead of (or before) forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The service's throttling error as AWS sends it: S3 `503 SlowDown`; KMS, ECR and other JSON
    /// services `400 ThrottlingException` (`x-amzn-errortype` header and `__type`); IAM, STS and
    /// other query services `400 Throttling` in an `<ErrorResponse>`.
    Throttle,
    /// [`Fault::Throttle`] with AWS's `x-amz-retry-after` header asking for this wait.
    ThrottleRetryAfter(Duration),
    /// `RequestLimitExceeded` (EC2's throttling code) with status 503, in the service's protocol.
    RequestLimitExceeded,
    /// `500 InternalError` (S3) / `InternalFailure` (JSON and query services).
    InternalError,
    /// Close the connection without answering, before forwarding: the request never happened.
    Drop,
    /// Forward, then close the connection without passing the answer on: the request took effect
    /// but the caller cannot know.
    DropAfterForward,
    /// Wait this long, then forward.
    Latency(Duration),
    /// Keep the connection open and never answer (a black hole: a lost packet path, a hung
    /// load balancer).
    Stall,
    /// What each service answers for a resource policy naming a principal it does not know (one
    /// that does not exist, or was created moments ago): S3 `400 MalformedPolicy` "Invalid
    /// principal in policy", ECR `400 InvalidParameterException` "… 'Principal not found'", KMS
    /// `400 MalformedPolicyDocumentException` "… one or more invalid principals", IAM
    /// `400 MalformedPolicyDocument` "Invalid principal in policy: …", SNS `400 InvalidParameter`
    /// "… PrincipalNotFound", Secrets Manager `400 MalformedPolicyDocumentException` "… unsupported
    /// principal", SQS `400 InvalidAttributeValue` "Invalid value for the parameter Policy.". Given by
    /// [`FaultProxy::refuse_principal`], never drawn at random.
    PrincipalRefused,
    /// IAM's `404 NoSuchEntity` for `GetRole`: a role created moments ago that IAM does not return
    /// yet. Given by [`FaultProxy::hide_role`], never drawn at random.
    NoSuchEntity,
}

impl Fault {
    /// Whether the answer is a throttling error.
    pub fn is_throttle(&self) -> bool {
        matches!(
            self,
            Fault::Throttle | Fault::ThrottleRetryAfter(_) | Fault::RequestLimitExceeded
        )
    }
}

/// Which requests get which faults.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seeds every decision.
    pub seed: u64,
    /// The fraction (0 to 1) of the selected requests that get a fault.
    pub rate: f64,
    /// The faults, one chosen at random (seeded) per faulted request.
    pub faults: Vec<Fault>,
    /// Services whose requests may get a fault, as SigV4 names them (`s3`, `kms`, `ecr`, `iam`,
    /// `sts`); empty: every service but `sts`.
    pub services: Vec<String>,
    /// Operations whose requests may get a fault (`PutBucketPolicy`, `GetKeyPolicy`...); empty:
    /// every operation of the selected services.
    pub operations: Vec<String>,
}

impl FaultPlan {
    /// No fault at all.
    pub fn none() -> FaultPlan {
        FaultPlan {
            seed: 0,
            rate: 0.0,
            faults: Vec::new(),
            services: Vec::new(),
            operations: Vec::new(),
        }
    }

    /// `rate` of the requests to every service but STS get one of `faults`.
    pub fn new(seed: u64, rate: f64, faults: &[Fault]) -> FaultPlan {
        FaultPlan {
            seed,
            rate,
            faults: faults.to_vec(),
            services: Vec::new(),
            operations: Vec::new(),
        }
    }

    /// Only requests of these operations.
    pub fn operations(mut self, operations: &[&str]) -> FaultPlan {
        self.operations = operations.iter().map(|o| o.to_string()).collect();
        self
    }

    /// Only requests to these services.
    pub fn services(mut self, services: &[&str]) -> FaultPlan {
        self.services = services.iter().map(|s| s.to_string()).collect();
        self
    }

    fn selects(&self, service: &str, operation: &str) -> bool {
        let service_ok = if self.services.is_empty() {
            service != "sts"
        } else {
            self.services.iter().any(|s| s == service)
        };
        let operation_ok =
            self.operations.is_empty() || self.operations.iter().any(|o| o == operation);
        service_ok && operation_ok && self.rate > 0.0 && !self.faults.is_empty()
    }
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// SigV4 service name: `s3`, `kms`, `ecr`, `iam`, `sts`...
    pub service: String,
    /// The API operation, e.g. `PutBucketPolicy` (S3 operations the proxy does not know are named
    /// `METHOD ?subresource`).
    pub operation: String,
    /// The request path (S3: `/bucket`).
    pub path: String,
    /// The request body, as text.
    pub body: String,
    /// The fault it got, if any.
    pub fault: Option<Fault>,
    /// The status the caller received; `None` when the connection was dropped (or while the
    /// request is in flight).
    pub status: Option<u16>,
    id: u64,
}

impl Seen {
    /// How the caller saw it, in the categories of [`xacct::aws::CallOutcome`]: a throttling
    /// error (or a 429 or 503), a success, or anything else.
    pub fn outcome(&self) -> xacct::aws::CallOutcome {
        use xacct::aws::CallOutcome;
        match (self.fault, self.status) {
            (Some(fault), _) if fault.is_throttle() => CallOutcome::Throttled,
            (_, Some(200..=299)) => CallOutcome::Success,
            (_, Some(429 | 503)) => CallOutcome::Throttled,
            _ => CallOutcome::Error,
        }
    }
}

#[derive(Default)]
struct State {
    plan: Option<FaultPlan>,
    seen: Vec<Seen>,
    /// Requests received so far.
    received: u64,
    /// How many times each request (by content) was received.
    repeats: HashMap<u64, u64>,
    /// Names that change from one test run to the next (KMS key ids), and what to read instead
    /// when deciding.
    renames: Vec<(String, String)>,
    /// Policy writes naming one of these are refused ([`Fault::PrincipalRefused`]), each as
    /// many more times as it says (`None`: always).
    refused: Vec<(String, Option<u64>)>,
    /// Roles `GetRole` does not find, each as many more times as it says.
    hidden: Vec<(String, u64)>,
}

/// The proxy, listening on a loopback port until dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://HOST:PORT`), injecting no fault until
    /// [`FaultProxy::set_plan`].
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, upstream, state.clone())
                    });
                    // An error here is a connection the proxy dropped on purpose, or one the
                    // client closed.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            endpoint,
            state,
            task,
        }
    }

    /// Replaces the fault plan (and keeps what was seen so far).
    pub fn set_plan(&self, plan: FaultPlan) {
        self.lock().plan = Some(plan);
    }

    /// Every request received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Reads `volatile` (a KMS key id: moto makes new ones every run) as `stable` when deciding,
    /// so that the same request gets the same fault from one test run to the next.
    pub fn stable_name(&self, volatile: &str, stable: &str) {
        self.lock()
            .renames
            .push((volatile.to_string(), stable.to_string()));
    }

    /// Refuses the first `times` (`None`: every) resource policy writes whose document contains
    /// `needle` (a principal's name), in each service's words ([`Fault::PrincipalRefused`]): the
    /// whole document, whatever else is in it. The principal "appears" after that, as a role does
    /// once IAM has propagated it.
    pub fn refuse_principal(&self, needle: &str, times: Option<u64>) {
        self.lock().refused.push((needle.to_string(), times));
    }

    /// Answers the next `times` `GetRole` calls for the role `name` with `NoSuchEntity`, as IAM
    /// may just after creating it.
    pub fn hide_role(&self, name: &str, times: u64) {
        self.lock().hidden.push((name.to_string(), times));
    }

    /// Forgets the requests seen so far (not the repeat counts, so decisions keep moving on).
    pub fn clear(&self) {
        self.lock().seen.clear();
    }

    /// `options` with every call sent through this proxy.
    pub fn options(&self, options: ConnectorOptions) -> ConnectorOptions {
        ConnectorOptions {
            endpoint_url: Some(self.endpoint.clone()),
            ..options
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProxyError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, ProxyError> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let service = sigv4_service(&parts.headers).unwrap_or_else(|| "unknown".into());
    let operation = operation(&service, &parts, &body);
    let (fault, id) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let key = request_key(&parts, &body, &state.renames);
        let repeat = {
            let n = state.repeats.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let refused = RESOURCE_POLICY_WRITES.contains(&operation.as_str()) && {
            let text = percent_decoded(&String::from_utf8_lossy(&body));
            let hit = state.refused.iter_mut().find(|(needle, times)| {
                text.contains(needle.as_str()) && times.is_none_or(|n| n > 0)
            });
            hit.map(|(_, times)| {
                if let Some(n) = times {
                    *n -= 1;
                }
            })
            .is_some()
        };
        let hidden = operation == "GetRole" && {
            let text = String::from_utf8_lossy(&body);
            let hit = state.hidden.iter_mut().find(|(name, times)| {
                *times > 0 && text.split('&').any(|p| p == format!("RoleName={name}"))
            });
            hit.map(|(_, times)| *times -= 1).is_some()
        };
        let fault = if refused {
            Some(Fault::PrincipalRefused)
        } else if hidden {
            Some(Fault::NoSuchEntity)
        } else {
            state
                .plan
                .as_ref()
                .filter(|plan| plan.selects(&service, &operation))
                .and_then(|plan| decide(plan, key, repeat))
        };
        state.received += 1;
        let id = state.received;
        // Recorded on arrival, so that a request that never gets an answer is seen too.
        state.seen.push(Seen {
            at,
            service: service.clone(),
            operation,
            path: parts.uri.path().to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
            fault,
            status: None,
            id,
        });
        (fault, id)
    };
    let result = match fault {
        None => forward(upstream, parts, body).await,
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            forward(upstream, parts, body).await
        }
        Some(Fault::Drop) => Err("fault: connection dropped".into()),
        Some(Fault::Stall) => {
            // Until the caller gives up and closes the connection (or the test ends).
            std::future::pending::<()>().await;
            Err("fault: stalled".into())
        }
        Some(Fault::DropAfterForward) => match forward(upstream, parts, body).await {
            Ok(_) => Err("fault: connection dropped after forwarding".into()),
            Err(e) => Err(e),
        },
        Some(fault) => Ok(error_response(&service, fault)),
    };
    if let Ok(response) = &result {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seen) = state.seen.iter_mut().rev().find(|s| s.id == id) {
            seen.status = Some(response.status().as_u16());
        }
    }
    result
}

/// The writes of policies with principals that AWS checks.
const RESOURCE_POLICY_WRITES: &[&str] = &[
    "PutBucketPolicy",
    "SetRepositoryPolicy",
    "PutKeyPolicy",
    "UpdateAssumeRolePolicy",
    "CreateRole",
    "SetQueueAttributes",
    "SetTopicAttributes",
    "PutResourcePolicy",
];

/// `text` with `%XX` escapes and `+` decoded (IAM's form-encoded bodies), so that a principal's
/// name is found whatever the protocol.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fault for the `repeat`-th sending of the request `key`, if it gets one.
fn decide(plan: &FaultPlan, key: u64, repeat: u64) -> Option<Fault> {
    let mut hasher = DefaultHasher::new();
    (plan.seed, key, repeat).hash(&mut hasher);
    let mut rng = fastrand::Rng::with_seed(hasher.finish());
    if rng.f64() < plan.rate {
        Some(plan.faults[rng.usize(..plan.faults.len())])
    } else {
        None
    }
}

fn request_key(parts: &http::request::Parts, body: &[u8], renames: &[(String, String)]) -> u64 {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut text = format!(
        "{} {} {} {target} {}",
        parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        String::from_utf8_lossy(body)
    );
    for (volatile, stable) in renames {
        text = text.replace(volatile, stable);
    }
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

async fn forward(
    upstream: SocketAddr,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, ProxyError> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    for hop in ["connection", "keep-alive", "transfer-encoding"] {
        parts.headers.remove(hop);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The service in the SigV4 credential scope: `Credential=AKID/DATE/REGION/SERVICE/aws4_request`.
fn sigv4_service(headers: &http::HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_string)
}

/// The API operation of a request: `X-Amz-Target` (JSON protocols), `Action=` (query protocols),
/// or method and subresource (S3).
fn operation(service: &str, parts: &http::request::Parts, body: &[u8]) -> String {
    if let Some(target) = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let text = String::from_utf8_lossy(body);
    if let Some(action) = text
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        return action.to_string();
    }
    if service == "s3" {
        let subresource = parts
            .uri
            .query()
            .and_then(|q| q.split('&').next())
            .map(|p| p.split('=').next().unwrap_or(p))
            .unwrap_or("");
        let method = parts.method.as_str();
        return match (method, subresource) {
            ("GET", "policy") => "GetBucketPolicy".into(),
            ("PUT", "policy") => "PutBucketPolicy".into(),
            ("DELETE", "policy") => "DeleteBucketPolicy".into(),
            ("GET", "encryption") => "GetBucketEncryption".into(),
            _ => format!("{method} ?{subresource}"),
        };
    }
    "unknown".into()
}

enum Protocol {
    RestXml,
    Json,
    Query,
}

fn protocol(service: &str) -> Protocol {
    match service {
        "s3" => Protocol::RestXml,
        "iam" | "sts" | "rds" | "sns" => Protocol::Query,
        _ => Protocol::Json,
    }
}

/// The error AWS would answer, in the service's protocol.
fn error_response(service: &str, fault: Fault) -> Response<Full<Bytes>> {
    let request_id = "fault-proxy-0000";
    let throttle = matches!(fault, Fault::Throttle | Fault::ThrottleRetryAfter(_));
    let (status, code, message) = match (throttle, fault, protocol(service)) {
        (true, _, Protocol::RestXml) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        (true, _, Protocol::Json) => (
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        ),
        (true, _, Protocol::Query) => (StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        (_, Fault::PrincipalRefused, _) => match service {
            "ecr" => (
                StatusCode::BAD_REQUEST,
                "InvalidParameterException",
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Principal not found'",
            ),
            "kms" => (
                StatusCode::BAD_REQUEST,
                "MalformedPolicyDocumentException",
                "Policy contains a statement with one or more invalid principals.",
            ),
            "iam" => (
                StatusCode::BAD_REQUEST,
                "MalformedPolicyDocument",
                "Invalid principal in policy",
            ),
            "sns" => (
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "Invalid parameter: Policy Error: PrincipalNotFound",
            ),
            "secretsmanager" => (
                StatusCode::BAD_REQUEST,
                "MalformedPolicyDocumentException",
                "This resource policy contains an unsupported principal.",
            ),
            // SQS does not say which part of the policy it refuses.
            "sqs" => (
                StatusCode::BAD_REQUEST,
                "InvalidAttributeValue",
                "Invalid value for the parameter Policy.",
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "MalformedPolicy",
                "Invalid principal in policy",
            ),
        },
        (_, Fault::NoSuchEntity, _) => (
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            "The role cannot be found.",
        ),
        (_, Fault::RequestLimitExceeded, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ),
        (_, _, Protocol::RestXml) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (_, _, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
    };
    let (content_type, body) = match protocol(service) {
        Protocol::RestXml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        Protocol::Query => {
            let kind = if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            (
                "text/xml",
                format!(
                    "<ErrorResponse xmlns=\"https://{service}.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                ),
            )
        }
        Protocol::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": code, "message": message}).to_string(),
        ),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", request_id);
    if let Protocol::Json = protocol(service) {
        response = response.header("x-amzn-errortype", code);
    }
    if let Fault::ThrottleRetryAfter(wait) = fault {
        response = response.header("x-amz-retry-after", wait.as_millis().to_string());
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
