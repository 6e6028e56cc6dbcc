//! Policies: loading policy documents, compiling their CEL rules once, and deciding.
//!
//! # Decision semantics
//! 1. **Trust** (stage `trust`): the caller must pass [`TrustPolicy::verify`]; otherwise deny
//!    (HTTP 403) and no rule runs.
//! 2. **Deny rules** (stage `rules`): the first deny rule, in file order, that matches *or
//!    fails to evaluate* denies, with its `status` (default 403). Failing closed: a deny rule
//!    that cannot be evaluated must not let the request through.
//! 3. **Allow rules** (stage `rules`): the first allow rule that matches allows. An allow rule
//!    that fails to evaluate does not match; the failure is recorded in the decision.
//! 4. **Default** (stage `default`): nothing allowed ⇒ deny 403. No rules ⇒ everything denied.
//!
//! This module does no I/O: the loader hands it file contents and a way to read bundles.

mod cel;
mod data;
mod decision;
mod error;
mod evaluate;
mod file;
mod lint;
mod revision;
mod rule;
mod trust_section;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::request::AuthzRequest;
use crate::trust::TrustPolicy;

use self::cel::DATA_KEY_MISSING;
pub use self::cel::{
    CompileError, EvalError, Field, Glob, HeadersRead, MAX_DEPTH, Shape, VARIABLES, Variable,
};
pub use decision::{Decision, Identities, RuleFailure, ShadowResult, Stage, Verdict};
pub use error::{PolicyError, PolicyErrors};
pub use evaluate::{Explanation, RuleExplanation, RuleResult};

use self::cel::{CelEnv, RequestVariables, with_evaluation_stack};
use evaluate::RulesOutcome;
use file::{Effect, Mode, PolicyFile};
use rule::{Rule, check_rule_id, compile_rule};

/// HTTP status of a deny when the rule does not say otherwise.
pub const DEFAULT_DENY_STATUS: u16 = 403;

/// What kind of file a policy asks the loader to read (the loader bounds each kind's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A trust bundle (`trust.bundles`).
    Bundle,
    /// A data file (`data_files`).
    Data,
    /// A revocation list (`trust.revoked_files`).
    Revocation,
}

/// Bundles delivered by a source other than files (`trust.bundles_from`): trust domain →
/// SPIFFE bundle JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalBundles {
    /// Where they came from (`workload_api unix:///…`), for the revision and messages.
    pub source: String,
    /// Trust domain name → its SPIFFE bundle (JWK Set JSON).
    pub bundles: std::collections::BTreeMap<String, Vec<u8>>,
}

impl ExternalBundles {
    /// The `source` of bundles streamed from the Workload API at `endpoint`: a policy uses
    /// them only while its `trust.bundles_from` names that endpoint.
    pub fn workload_api_source(endpoint: &str) -> String {
        format!("workload_api {endpoint}")
    }
}

/// Reads a file a policy names, at a path already resolved against the directory of the
/// policy file naming it.
pub type ReadFile<'a> = dyn FnMut(&Path, FileKind) -> std::io::Result<Vec<u8>> + 'a;

/// One policy document: where it came from and its text.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The file the text was read from; relative paths in it resolve against its directory.
    pub path: PathBuf,
    /// The file's YAML text.
    pub text: String,
}

/// A compiled, immutable policy: trust settings and rules. Shared by all checks.
#[derive(Debug)]
pub struct Policy {
    trust: TrustPolicy,
    cel: CelEnv,
    deny_rules: Vec<Rule>,
    allow_rules: Vec<Rule>,
    /// Rules in `mode: audit`, with the verdict each would give: evaluated, never deciding.
    shadow_rules: Vec<(Verdict, Rule)>,
    /// The entries of `request.headers` any rule can observe: only these are built per request.
    headers_read: HeadersRead,
    /// Whether every rule is cheap (see [`Policy::is_cheap`]).
    cheap: bool,
    /// Every file the policy was compiled from: its documents, then the bundles and data
    /// files they name.
    files: Vec<PathBuf>,
    /// What loads but is almost certainly a mistake (see [`lint`]).
    warnings: Vec<PolicyError>,
    /// A short hash of everything the policy was compiled from (see [`revision`]).
    revision: Arc<str>,
}

impl Policy {
    /// Compiles policy documents (in the order given: rules keep it). `trust` must appear in
    /// exactly one document. `read_file` reads the bundles and data files they name.
    pub fn compile(
        sources: &[PolicySource],
        read_file: &mut ReadFile<'_>,
    ) -> Result<Self, PolicyErrors> {
        Self::compile_with(sources, read_file, &ExternalBundles::default())
    }

    /// [`Policy::compile`], with the bundles a `trust.bundles_from` source delivered (they are
    /// part of the revision, like the files).
    pub fn compile_with(
        sources: &[PolicySource],
        read_file: &mut ReadFile<'_>,
        external: &ExternalBundles,
    ) -> Result<Self, PolicyErrors> {
        let mut errors = Vec::new();
        let mut files: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
        let mut revision = revision::Revision::default();
        for source in sources {
            revision.add(&source.path, source.text.as_bytes());
        }
        for (trust_domain, bundle) in &external.bundles {
            revision.add(
                Path::new(&format!("{}#{trust_domain}", external.source)),
                bundle,
            );
        }
        let mut reading = |path: &Path, kind| {
            files.push(path.to_path_buf());
            let bytes = read_file(path, kind)?;
            revision.add(path, &bytes);
            Ok(bytes)
        };
        let mut cel = CelEnv::default();
        let mut trust: Option<(PathBuf, u64, TrustPolicy)> = None;
        let mut seen_ids: HashMap<String, (PathBuf, u64)> = HashMap::new();
        let mut deny_rules = Vec::new();
        let mut allow_rules = Vec::new();
        let mut shadow_rules = Vec::new();
        let mut linted = Vec::new();
        let mut linted_trust = None;

        // A policy directory may hold the data files its documents name: those are data,
        // not policy documents.
        let parsed: Vec<_> = sources
            .iter()
            .map(|source| (source, parse_yaml(&source.text)))
            .collect();
        let named_data: Vec<PathBuf> = parsed
            .iter()
            .filter_map(|(source, parsed)| Some((source, parsed.as_ref().ok()?)))
            .flat_map(|(source, document)| {
                let base = source.path.parent().unwrap_or(Path::new(""));
                document
                    .data_files
                    .iter()
                    .map(move |name| base.join(&name.value))
            })
            .collect();
        let is_data = |path: &Path| {
            named_data
                .iter()
                .any(|data| data.components().eq(path.components()))
        };

        // First every document's data, which rules may read at load.
        let mut documents = Vec::with_capacity(sources.len());
        let mut data = data::Data::default();
        let mut listed: HashMap<PathBuf, data::Place> = HashMap::new();
        for (source, parsed) in parsed {
            if is_data(&source.path) {
                continue;
            }
            let mut document: PolicyFile = match parsed {
                Ok(document) => document,
                Err((line, rule, message)) => {
                    errors.push(PolicyError {
                        file: source.path.clone(),
                        line,
                        rule,
                        message,
                    });
                    continue;
                }
            };
            if let Some(section) = document.data.take() {
                data.add_section(&source.path, section, &mut errors);
            }
            let base = source.path.parent().unwrap_or(Path::new(""));
            for name in std::mem::take(&mut document.data_files) {
                let named_at = data::Place {
                    file: source.path.clone(),
                    line: Some(name.referenced.line()),
                };
                let path = base.join(&name.value);
                let normalized: PathBuf = path.components().collect();
                if let Some(first) = listed.get(&normalized) {
                    errors.push(PolicyError {
                        file: source.path.clone(),
                        line: named_at.line,
                        rule: None,
                        message: format!(
                            "data file {} is already listed at {first}; list each data file once",
                            path.display()
                        ),
                    });
                    continue;
                }
                listed.insert(normalized, named_at.clone());
                match reading(&path, FileKind::Data) {
                    Ok(bytes) => data.add_file(&path, &bytes, &named_at, &mut errors),
                    Err(e) => errors.push(PolicyError {
                        file: source.path.clone(),
                        line: named_at.line,
                        rule: None,
                        message: format!("data file {}: cannot read it: {e}", path.display()),
                    }),
                }
            }
            documents.push((source, document));
        }
        cel.bind_data(&data.values);
        // With data that failed to load, a rule reading the missing part would only add a
        // misleading second error.
        let data_failed = !errors.is_empty();
        let data_keys = data.keys().join(", ");

        for (source, document) in documents {
            let at = |line: Option<u64>, rule: Option<&str>, message: String| PolicyError {
                file: source.path.clone(),
                line,
                rule: rule.map(str::to_owned),
                message,
            };
            if let Some(section) = document.trust {
                let line = section.referenced.line();
                if let Some((first, first_line, _)) = &trust {
                    errors.push(at(
                        Some(line),
                        None,
                        format!(
                            "`trust` is already defined in {}:{first_line}; define it in one file only",
                            first.display()
                        ),
                    ));
                } else {
                    match trust_section::compile_trust(
                        &source.path,
                        section.value,
                        &mut reading,
                        external,
                    ) {
                        Ok(policy) => trust = Some((source.path.clone(), line, policy)),
                        Err(message) => errors.push(at(Some(line), None, message)),
                    }
                }
            }
            for spec in document.rules {
                let id = spec.id.value.clone();
                let line = spec.id.referenced.line();
                if let Err(message) = check_rule_id(&id) {
                    errors.push(at(Some(line), None, message));
                    continue;
                }
                if let Some((file, first_line)) = seen_ids.get(&id) {
                    errors.push(at(
                        Some(line),
                        Some(&id),
                        format!(
                            "duplicate rule id, first defined at {}:{first_line}",
                            file.display()
                        ),
                    ));
                    continue;
                }
                seen_ids.insert(id.clone(), (source.path.clone(), line));
                let when_line = spec.when.referenced.line();
                let compiled = compile_rule(&mut cel, spec);
                if let Ok((effect, mode, rule)) = &compiled {
                    linted.push(lint::LintedRule {
                        file: source.path.clone(),
                        line: when_line,
                        id: id.clone(),
                        effect: *effect,
                        mode: *mode,
                        canonical: rule.expression.canonical().to_owned(),
                        constant: rule.expression.variables().is_empty(),
                        uses_workload: rule.expression.variables().contains(&"workload"),
                    });
                }
                match compiled {
                    Ok((effect, Mode::Audit, rule)) => shadow_rules.push((effect.verdict(), rule)),
                    Ok((Effect::Allow, Mode::Enforce, rule)) => allow_rules.push(rule),
                    Ok((Effect::Deny, Mode::Enforce, rule)) => deny_rules.push(rule),
                    Err((_, message)) if data_failed && message.contains(DATA_KEY_MISSING) => {}
                    Err((line, message)) => {
                        let message = if message.contains(DATA_KEY_MISSING) {
                            format!("{message} (data has: {data_keys})")
                        } else {
                            message
                        };
                        errors.push(at(Some(line), Some(&id), message))
                    }
                }
            }
        }

        let trust = match trust {
            Some((file, line, trust)) => {
                linted_trust = Some(lint::trust_warnings(&trust, &file, line));
                Some(trust)
            }
            // A file that failed to parse may well hold the `trust` section: don't pile a
            // misleading second error on top of the real one.
            None if !errors.is_empty() => None,
            None => {
                errors.push(PolicyError {
                    file: sources
                        .first()
                        .map_or_else(|| PathBuf::from("<policy>"), |s| s.path.clone()),
                    line: None,
                    rule: None,
                    message: "no policy file defines `trust` (trust.trust_domains is required)"
                        .to_owned(),
                });
                None
            }
        };
        match trust {
            Some(trust) if errors.is_empty() => {
                let mut headers_read = HeadersRead::default();
                let mut cheap = true;
                for rule in deny_rules
                    .iter()
                    .chain(&allow_rules)
                    .chain(shadow_rules.iter().map(|(_, rule)| rule))
                {
                    headers_read.extend(rule.expression.headers_read());
                    cheap &= rule.expression.is_cheap();
                }
                let warnings = lint::lint(&linted, linted_trust.unwrap_or_default(), &trust);
                Ok(Self {
                    trust,
                    cel,
                    deny_rules,
                    allow_rules,
                    shadow_rules,
                    headers_read,
                    cheap,
                    files,
                    warnings,
                    revision: revision.finish(),
                })
            }
            _ => Err(PolicyErrors(errors)),
        }
    }

    /// Whether every rule (shadow rules included) is made only of `&&`, `||`, `!` and string
    /// tests of request fields whose cost is bounded by the rule's literals (`==`, `!=`, `in`
    /// a list, `startsWith`, `endsWith`, lookups by key; not `contains`, which searches the
    /// whole value): see the README's "Common rules skip the engine". Deciding a request then
    /// costs a few comparisons per rule, whatever the request, so the server may decide it on
    /// the async worker that received it rather than hand it to a decider thread.
    pub fn is_cheap(&self) -> bool {
        self.cheap
    }

    /// The number of rules, allow and deny.
    pub fn rule_count(&self) -> usize {
        self.deny_rules.len() + self.allow_rules.len() + self.shadow_rules.len()
    }

    /// Every shadow rule's (`mode: audit`) id with the verdict it would give, in order.
    pub fn shadow_rule_ids(&self) -> impl Iterator<Item = (Verdict, &Arc<str>)> {
        self.shadow_rules
            .iter()
            .map(|(verdict, rule)| (*verdict, &rule.id))
    }

    /// Every enforced rule's id with the verdict it gives when it matches, in evaluation
    /// order.
    pub fn rule_ids(&self) -> impl Iterator<Item = (Verdict, &Arc<str>)> {
        self.deny_rules
            .iter()
            .map(|rule| (Verdict::Deny, &rule.id))
            .chain(
                self.allow_rules
                    .iter()
                    .map(|rule| (Verdict::Allow, &rule.id)),
            )
    }

    /// Every file the policy was compiled from: its documents, then the bundles and data
    /// files they name (what a reload watches).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The policy's revision: a short hash of the names and contents of every file it was
    /// compiled from, in load order. Equal policies have equal revisions on any machine.
    pub fn revision(&self) -> &Arc<str> {
        &self.revision
    }

    /// Lint warnings: rules that load but are almost certainly mistakes, each as
    /// `FILE:LINE: rule 'ID': warning: …`.
    pub fn warnings(&self) -> &[PolicyError] {
        &self.warnings
    }

    /// The trust stage settings.
    pub fn trust(&self) -> &TrustPolicy {
        &self.trust
    }

    /// Decides one request. Never panics and never fails: every error becomes a deny (or, for
    /// an allow rule, a non-match) with the reason recorded.
    pub fn decide(&self, request: &AuthzRequest, now: SystemTime) -> Decision {
        let id = uuid::Uuid::now_v7().to_string();
        let (identity, outcome, shadow) = match self.trust.establish(request, now) {
            Ok((identities, admitted)) => {
                let (outcome, shadow) = match admitted {
                    Err(untrusted) => (RulesOutcome::untrusted(untrusted.to_string()), Vec::new()),
                    Ok(()) => {
                        let variables =
                            RequestVariables::new(&identities, request, now, &self.headers_read);
                        let activation = self.cel.activation(&variables);
                        with_evaluation_stack(|| {
                            (
                                self.evaluate_rules(&activation),
                                self.evaluate_shadow(&activation),
                            )
                        })
                    }
                };
                (Some(identities), outcome, shadow)
            }
            Err(untrusted) => (
                None,
                RulesOutcome::untrusted(untrusted.to_string()),
                Vec::new(),
            ),
        };
        let none = || Arc::from([]);
        let (http_status, headers, response_headers, remove_headers) =
            match (outcome.verdict, outcome.rule) {
                (Verdict::Allow, Some(rule)) => (
                    200,
                    Arc::clone(&rule.headers),
                    Arc::clone(&rule.response_headers),
                    Arc::clone(&rule.remove_headers),
                ),
                (_, Some(rule)) => (
                    rule.status,
                    none(),
                    Arc::clone(&rule.response_headers),
                    Arc::from([]),
                ),
                (_, None) => (DEFAULT_DENY_STATUS, none(), none(), Arc::from([])),
            };
        Decision {
            id,
            verdict: outcome.verdict,
            stage: outcome.stage,
            rule: outcome.rule.map(|rule| Arc::clone(&rule.id)),
            reason: outcome.reason,
            http_status,
            identity,
            headers,
            response_headers,
            remove_headers,
            failures: outcome.failures,
            shadow,
            policy_revision: Arc::clone(&self.revision),
        }
    }
}

/// Parses YAML, returning the error's line when the parser knows it and the id of the rule
/// that holds it.
fn parse_yaml(text: &str) -> Result<PolicyFile, (Option<u64>, Option<String>, String)> {
    if text.trim().is_empty() {
        return Ok(PolicyFile::default());
    }
    crate::yaml::from_str(text).map_err(|e| {
        let location = e.location().filter(|l| l.line() > 0);
        let rule = location.and_then(|l| file::rule_at(text, l.line(), l.column()));
        (
            location.map(|l| l.line()),
            rule,
            yaml_error_gist(&e.to_string()),
        )
    })
}

/// The first line of a YAML error (serde-saphyr's rendering) without its `error: line N column M:` prefix, since the
/// caller reports the location itself, and without advice meant for programmers.
pub fn yaml_error_gist(message: &str) -> String {
    let first = message.lines().next().unwrap_or("invalid YAML");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let gist = match first.split_once(": ") {
        Some((location, rest))
            if location.starts_with("line ") && location.contains(" column ") =>
        {
            rest
        }
        _ => first,
    };
    if let Some((duplicate, _)) = gist.split_once(", set DuplicateKeyPolicy") {
        return format!("{duplicate} (a key may appear once)");
    }
    if let Some((null, _)) = gist.split_once("; use Option<") {
        return format!("{null}: a value is required here");
    }
    if gist.starts_with("multiple YAML documents detected") {
        return "a file holds one YAML document: put each `---` document in a file of its own"
            .to_owned();
    }
    if let Some(limit) = gist.strip_prefix("budget breached: ") {
        let limit = limit.split_once('{').map_or(limit, |(_, inner)| {
            inner.trim_end_matches(['}', ' ']).trim()
        });
        return format!(
            "the YAML is larger than the parser allows ({limit}), which also stops alias bombs"
        );
    }
    if gist == "expected sequence start" {
        return "expected a list here ([a, b] or one `- item` per line)".to_owned();
    }
    if gist == "expected mapping start" {
        return "expected a map here ({key: value} or one `key: value` per line)".to_owned();
    }
    if gist == "invalid u16" {
        return "expected a whole number from 0 to 65535".to_owned();
    }
    gist.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_gist_strips_location() {
        assert_eq!(
            yaml_error_gist("error: line 6 column 5: unknown field `whn`\n  --> snippet"),
            "unknown field `whn`"
        );
        assert_eq!(yaml_error_gist("something else"), "something else");
        assert_eq!(
            yaml_error_gist("error: line 1 column 1: budget breached: Nodes { nodes: 250001 }"),
            "the YAML is larger than the parser allows (nodes: 250001), which also stops alias bombs"
        );
        assert!(
            yaml_error_gist("multiple YAML documents detected; use from_str_multiple")
                .starts_with("a file holds one YAML document")
        );
    }
}
