//! A server bound to its listeners (`bind`) and serving until shutdown (`BoundServer::serve`):
//! the policy, reloads, Workload API bundles, the admin listener, signals and the drain.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A server whose policy is loaded, audit started and listeners bound, ready to serve.
#[derive(Debug)]
pub struct BoundServer {
    grpc: listener::GrpcListener,
    admin: Option<TcpListener>,
    service: AuthzService,
    auditor: Arc<Auditor>,
    live: Arc<LivePolicy>,
    reloads: reload::Reloads,
    options: ServeOptions,
    tls: Option<Arc<tls::Tls>>,
    info: crate::status::ServerInfo,
}

/// Loads the policy named by `config`, starts audit and binds the listeners.
pub async fn bind(config: Config) -> Result<BoundServer, ServerError> {
    let (policy, _) = load_policy(std::slice::from_ref(&config.policy)).map_err(|errors| {
        ServerError::Policy {
            path: config.policy.clone(),
            errors,
        }
    })?;
    for warning in policy.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        policy = %config.policy.display(),
        revision = %policy.revision(),
        files = policy.files().len(),
        rules = policy.rule_count(),
        trust_domains = %policy.trust().trust_domains().join(","),
        decided_on = super::decided_on(&policy),
        "policy loaded"
    );
    let metrics = Arc::new(Metrics::default());
    let live = Arc::new(LivePolicy::new(
        policy,
        vec![config.policy.clone()],
        Arc::clone(&metrics),
    ));
    let settings = config.audit_settings(|name| std::env::var(name).ok())?;
    let auditor = Arc::new(Auditor::start(&settings, metrics)?);
    let decision_log = match &settings.decision_log {
        crate::audit::DecisionLogTarget::Stdout => "stdout".to_owned(),
        crate::audit::DecisionLogTarget::Stderr => "stderr".to_owned(),
        crate::audit::DecisionLogTarget::Off => "off".to_owned(),
        crate::audit::DecisionLogTarget::File(path) => path.display().to_string(),
    };
    let otlp = settings.otlp.as_ref().map_or_else(
        || "off".to_owned(),
        |o| crate::status::redact_url(&o.endpoint),
    );
    tracing::info!(
        otlp = %otlp,
        otlp_protocol = settings.otlp.as_ref().map_or("", |o| match o.protocol {
            crate::audit::OtlpProtocol::Grpc => "grpc",
            crate::audit::OtlpProtocol::HttpProtobuf => "http",
        }),
        decision_log = %decision_log,
        "audit started"
    );
    let tls = match (&config.tls, &config.listen) {
        (Some(_), crate::config::Listen::Unix(_)) => {
            return Err(ServerError::Tls(tls::TlsError::Config(
                "tls is for a TCP listener; a Unix socket is reachable only on this host".into(),
            )));
        }
        (Some(settings), _) => Some(Arc::new(tls::Tls::new(settings)?)),
        (None, _) => None,
    };
    let grpc = listener::GrpcListener::bind(&config.listen).await?;
    let admin = match &config.admin {
        Some(admin) => {
            Some(
                TcpListener::bind(admin.listen)
                    .await
                    .map_err(|reason| ServerError::Bind {
                        addr: admin.listen.to_string(),
                        reason,
                    })?,
            )
        }
        None => None,
    };
    let service = AuthzService::serving(Arc::clone(&live), &config.identity_header)
        .with_auditor(Arc::clone(&auditor))
        .with_limits(&config.limits);
    let grpc_described = grpc.describe();
    let admin_described = admin
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or_else(|| "off".to_owned(), |a| a.to_string());
    Ok(BoundServer {
        grpc,
        admin,
        service,
        auditor,
        reloads: reload::Reloads::start(Arc::clone(&live), &config.reload),
        info: crate::status::ServerInfo {
            started: SystemTime::now(),
            grpc: grpc_described,
            tls: match &tls {
                None => "off",
                Some(tls) if tls.mutual() => "mTLS",
                Some(_) => "TLS",
            },
            allowed_callers: config.tls.as_ref().map_or(0, |t| t.allowed_callers.len()),
            tls_state: tls.clone(),
            admin: admin_described,
            decision_log,
            otlp,
        },
        live,
        tls,
        options: ServeOptions {
            reflection: config.grpc_reflection,
            delay: config.shutdown_delay,
            grace: config.shutdown_grace,
            max_request_bytes: config.limits.max_request_bytes,
        },
    })
}

impl BoundServer {
    /// The gRPC listener's address when it is TCP (useful with port 0).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The admin listener's address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The auditor (to flush it in tests).
    pub fn auditor(&self) -> &Arc<Auditor> {
        &self.auditor
    }

    /// The serving policy (to reload it in tests).
    pub fn policy(&self) -> &Arc<LivePolicy> {
        &self.live
    }

    /// Serves until `shutdown` completes, then flushes the audit sinks.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(listener) = self.admin {
            let mut stop = stop_rx.clone();
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(listen = %addr, "admin listener (/, /status, /metrics, /healthz, /readyz)");
            }
            tokio::spawn(crate::admin::serve(
                listener,
                Arc::clone(&self.live),
                Arc::new(self.info.clone()),
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            ));
        }
        #[cfg(unix)]
        {
            // SIGHUP also reopens the decision-log file, as logrotate expects.
            let mut stop = stop_rx.clone();
            let auditor = Arc::clone(&self.auditor);
            if let Ok(mut hangup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            {
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            received = hangup.recv() => {
                                if received.is_none() {
                                    return;
                                }
                                let auditor = Arc::clone(&auditor);
                                let _ = tokio::task::spawn_blocking(move || {
                                    auditor.reopen_decision_log();
                                })
                                .await;
                            }
                            // The only change is to "stopped".
                            _ = stop.changed() => return,
                        }
                    }
                });
            }
        }
        {
            let mut stop = stop_rx.clone();
            let bundles = workload_api::run(Arc::clone(&self.live), self.reloads.trigger());
            let reloads = self.reloads.run();
            tokio::spawn(async move {
                tokio::select! {
                    _ = reloads => {}
                    _ = bundles => {}
                    _ = stop.wait_for(|stopped| *stopped) => {}
                }
            });
        }
        tracing::info!(
            listen = %self.grpc.describe(),
            tls = match &self.tls {
                None => "off",
                Some(tls) if tls.mutual() => "mTLS",
                Some(_) => "TLS",
            },
            "warrant ext_authz gRPC server listening"
        );
        let socket = listener::socket_path(&self.grpc);
        let result = match self.grpc {
            listener::GrpcListener::Tcp(tcp) => match self.tls {
                Some(tls) => {
                    let incoming = tokio_stream::wrappers::ReceiverStream::new(
                        tls.accept(tcp, Arc::clone(self.auditor.metrics())),
                    );
                    serve_with(incoming, self.service, self.options, shutdown).await
                }
                None => {
                    let incoming =
                        tokio_stream::wrappers::ReceiverStream::new(listener::accept_tcp(tcp));
                    serve_with(incoming, self.service, self.options, shutdown).await
                }
            },
            #[cfg(unix)]
            listener::GrpcListener::Unix(unix, _) => {
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(unix);
                serve_with(incoming, self.service, self.options, shutdown).await
            }
        };
        listener::remove_socket(socket.as_deref());
        let auditor = self.auditor;
        // After a clean drain, a Check answered at its deadline may still be deciding: its
        // record (unanswered) is written when it ends. Wait for those, within the time the
        // flush gets. After a cut-off, exit now: shutdown_grace is the bound.
        if matches!(result, Ok(Drained::Done)) {
            let waiting = Instant::now();
            while auditor.metrics().in_flight_count() > 0 && waiting.elapsed() < SHUTDOWN_FLUSH {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let deciding = auditor.metrics().in_flight_count();
            if deciding > 0 {
                tracing::warn!(
                    checks = deciding,
                    "Checks still being decided at exit (Envoy was answered already): their unanswered records are lost"
                );
            }
        }
        // The admin listener (/healthz, /readyz: 503 "shutting down", /metrics) answers
        // until the audit is flushed, as long as the process is up.
        // Flushing waits on the sink threads; keep it off the async workers.
        let flushed = tokio::task::spawn_blocking(move || auditor.flush(SHUTDOWN_FLUSH)).await;
        if !matches!(flushed, Ok(true)) {
            tracing::warn!(
                timeout = ?SHUTDOWN_FLUSH,
                "audit sinks did not finish writing and exporting before shutdown; queued records are lost"
            );
        }
        let _ = stop_tx.send(true);
        drop(stop_rx);
        result.map(|_| ())
    }
}

/// Loads, binds and serves until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    bind(config).await?.serve(shutdown).await
}
