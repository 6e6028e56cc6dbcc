//! The one module that talks to the CEL engine (`cel` crate): compiling rule expressions,
//! checking what they reference, building the per-request activation and evaluating.
//! When the engine's API changes, only this file changes.
//!
//! Cost model (measured on `cel` 0.15): building a root `Context` registers every builtin
//! (~35 µs), a child scope of a shared root costs ~1 µs. So one root is built when the policy
//! loads and each request gets a child scope holding only the variables the policy uses.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::common::types::{
    CelBool, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
};
use cel::common::value::{CowVal, Val};
use cel::{Context, Env, ExecutionError, FunctionContext, IdedExpr, Program, Value};
use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};

use crate::request::AuthzRequest;
use crate::trust::VerifiedPeer;

/// The variables a rule may reference, with the fields of those that have a fixed shape.
/// Keep in sync with `docs/cel.md`.
pub const VARIABLES: &[(&str, Option<&[&str]>)] = &[
    (
        "source",
        Some(&[
            "spiffe_id",
            "trust_domain",
            "path",
            "segments",
            "namespace",
            "service_account",
            "principal",
            "address",
            "port",
            "certificate",
        ]),
    ),
    ("destination", Some(&["principal", "address", "port"])),
    (
        "request",
        Some(&[
            "method", "path", "query", "host", "scheme", "protocol", "headers", "id", "time",
        ]),
    ),
    ("context", None),
    ("now", None),
];

/// CEL's type identifiers, usable as values (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// Why a rule expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    #[error("CEL syntax error: {0}")]
    Syntax(String),
    #[error(
        "unknown variable {0:?}; known variables are source, destination, request, context, now"
    )]
    UnknownVariable(String),
    #[error(
        "unknown function {name}(){}; names are case-sensitive (see docs/cel.md for the functions available)",
        if *.member { " called as a method" } else { "" }
    )]
    UnknownFunction { name: String, member: bool },
    #[error("{0}")]
    Usage(String),
    #[error("matches() pattern {pattern:?} is not a valid regular expression: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("unknown field {variable}.{field}; {variable} has {known}")]
    UnknownField {
        variable: String,
        field: String,
        known: String,
    },
}

/// Why a compiled expression failed on one request. `Display` never includes request values
/// (it goes to spans and logs); [`EvalError::detail`] is the engine's own message, which may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    #[error("{summary}")]
    Execution {
        /// Names the types and functions involved, never operand values.
        summary: String,
        /// The engine's message, which may quote operands (e.g. a header value).
        detail: String,
    },
    /// Only the type is kept: the value could be a header such as `authorization`.
    #[error("expression returned a {0}, not a bool")]
    NotBool(String),
}

/// The CEL environment shared by every rule of a policy: the standard library plus the
/// root context that per-request scopes borrow.
pub struct CelEnv {
    env: Arc<Env>,
    root: Context<'static, 'static>,
    /// The literal patterns of `matches()` calls seen by [`CelEnv::compile`], compiled once;
    /// moved into `root` by [`CelEnv::seal`].
    regexes: HashMap<String, Regex>,
}

impl fmt::Debug for CelEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelEnv").finish_non_exhaustive()
    }
}

impl Default for CelEnv {
    fn default() -> Self {
        // The engine is built without its `regex` feature, so the standard library has no
        // `matches`: Warrant provides it (see `matches_function`).
        let env = Arc::new(Env::stdlib());
        Self {
            root: root_context(&env, Arc::default()),
            env,
            regexes: HashMap::new(),
        }
    }
}

/// A root context of `env` with Warrant's own functions.
fn root_context(env: &Arc<Env>, regexes: Arc<HashMap<String, Regex>>) -> Context<'static, 'static> {
    let mut root = Context::with_env(Arc::clone(env));
    // Cannot conflict: the engine's `matches` is compiled out (Cargo.toml).
    let _ = root.add_function("matches", matches_function(regexes));
    root
}

/// Upper bound on the compiled size of one regular expression (the `regex` crate's default is
/// 10 MiB): a pattern that reaches it is rejected instead of costing memory and time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A function as the engine calls it: resolved arguments, borrowed where they can be.
type NativeFunction = Box<
    dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError>
        + Send
        + Sync,
>;

/// CEL's `matches` (unanchored), as `text.matches(pattern)` or `matches(text, pattern)`, both
/// strings, exactly like the engine's own. The engine's compiles the pattern on every call
/// (~30 µs); here every literal pattern of the policy is compiled once at load, and only a
/// pattern computed per request (rare, e.g. from `context`) is compiled per call. The text is
/// read where it lies, not copied.
fn matches_function(regexes: Arc<HashMap<String, Regex>>) -> NativeFunction {
    Box::new(move |ftx| {
        let (text, pattern) = match (&ftx.this, ftx.args.as_slice()) {
            (Some(text), [pattern]) => (text, pattern),
            (None, [text, pattern]) => (text, pattern),
            (this, args) => {
                let types = this
                    .iter()
                    .chain(args)
                    .map(|v| v.get_type().name().to_owned())
                    .collect();
                return Err(if this.is_some() {
                    ExecutionError::no_such_member_overload("matches", types)
                } else {
                    ExecutionError::no_such_overload("matches", types)
                });
            }
        };
        let (Some(text), Some(pattern)) = (
            text.downcast_ref::<CelString>(),
            pattern.downcast_ref::<CelString>(),
        ) else {
            let types = vec![
                text.get_type().name().to_owned(),
                pattern.get_type().name().to_owned(),
            ];
            return Err(ExecutionError::no_such_overload("matches", types));
        };
        let matched = match regexes.get(pattern.inner()) {
            Some(regex) => regex.is_match(text.inner()),
            None => compile_regex(pattern.inner())
                .map_err(|_| {
                    ExecutionError::function_error("matches", "invalid regular expression")
                })?
                .is_match(text.inner()),
        };
        Ok(CowVal::owned(CelBool::from(matched)))
    })
}

/// One compiled rule expression.
#[derive(Debug)]
pub struct Expression {
    program: Program,
    variables: BTreeSet<&'static str>,
    /// The string literals and field names written in the expression: the map keys an error
    /// may name without revealing anything from the request.
    written_keys: BTreeSet<String>,
}

impl CelEnv {
    /// Compiles `source` and checks that it only references known variables, fields and
    /// functions, and that its literal `matches()` patterns are valid regular expressions.
    pub fn compile(&mut self, source: &str) -> Result<Expression, CompileError> {
        let program = self
            .env
            .compile(source)
            .map_err(|e| CompileError::Syntax(e.to_string().replace('\n', "; ")))?;
        let mut references = References::default();
        let known_function = |name: &str, member: bool| self.has_function(name, member);
        check_references(
            program.expression(),
            &mut Vec::new(),
            &mut references,
            &known_function,
        )?;
        for pattern in references.patterns {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.regexes.entry(pattern) {
                let regex = compile_regex(slot.key()).map_err(|e| CompileError::Regex {
                    pattern: slot.key().clone(),
                    reason: e.to_string().replace('\n', " "),
                })?;
                slot.insert(regex);
            }
        }
        Ok(Expression {
            program,
            variables: references.variables,
            written_keys: references.written_keys,
        })
    }

    /// Hands the patterns compiled so far to `matches()`. Call once every rule is compiled;
    /// until then `matches()` compiles its pattern per call, and after it patterns of rules
    /// compiled later would be.
    pub fn seal(&mut self) {
        let regexes = Arc::new(std::mem::take(&mut self.regexes));
        self.root = root_context(&self.env, regexes);
    }

    /// Whether the engine knows function `name` (as a method when `member`). The engine has no
    /// public list of its functions and resolves names only when a call runs, so a misspelt
    /// `startswith` would otherwise load fine and fail on every request (denying everything
    /// in a deny rule). Probing a call with no arguments tells an unknown name
    /// (`UndeclaredReference`) from a known one with the wrong arguments. Runs at load only.
    fn has_function(&self, name: &str, member: bool) -> bool {
        let probe = if member {
            format!("null.{name}()")
        } else {
            format!("{name}()")
        };
        match self.env.compile(&probe) {
            Ok(program) => !matches!(
                program.execute(&self.root),
                Err(ExecutionError::UndeclaredReference(reference)) if reference.as_str() == name
            ),
            // Not a plain name: nothing to check.
            Err(_) => true,
        }
    }
}

/// The variables of one request, bound once in a child scope of the shared root and used by
/// every rule evaluated for it. Values borrow from the request instead of copying it.
pub struct Activation<'a> {
    scope: Context<'a, 'a>,
}

impl fmt::Debug for Activation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activation").finish_non_exhaustive()
    }
}

impl CelEnv {
    /// Builds the variables in `needed` (the union of what the policy's rules reference).
    pub fn activation<'a>(
        &'a self,
        needed: &BTreeSet<&'static str>,
        peer: &'a VerifiedPeer,
        request: &'a AuthzRequest,
        now: SystemTime,
    ) -> Activation<'a> {
        let root: &'a Context<'a, 'a> = &self.root;
        let mut scope = root.new_inner_scope();
        for &name in needed {
            let value = match name {
                "source" => source_value(peer, request),
                "destination" => destination_value(request),
                "request" => request_value(request),
                "context" => string_map(
                    request
                        .context_extensions
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
                "now" => timestamp(now),
                _ => continue,
            };
            scope.add_variable_as_val(name, value);
        }
        Activation { scope }
    }

    /// Evaluates `expression` in `activation`; only `true` matches.
    pub fn eval(
        &self,
        expression: &Expression,
        activation: &Activation<'_>,
    ) -> Result<bool, EvalError> {
        match expression.program.execute(&activation.scope) {
            Ok(Value::Bool(matched)) => Ok(matched),
            Ok(other) => Err(EvalError::NotBool(other.type_of().to_string())),
            Err(e) => Err(EvalError::Execution {
                summary: describe_execution_error(&e, &expression.written_keys),
                detail: e.to_string(),
            }),
        }
    }
}

impl EvalError {
    /// The full message for the operator's own tools (`warrant eval`): may quote request values.
    pub fn detail(&self) -> String {
        match self {
            EvalError::Execution { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }
}

/// An engine error as text that names the types involved but never the values: the engine's
/// own messages print operands with `{:?}`, and an operand may be a request header such as
/// `authorization` (`request.headers.authorization > 5` would put the token in the reason, the
/// decision log and the span). Variants without operands keep the engine's message; a missing
/// map key is named only when it is written in the expression (`written_keys`), since a key
/// computed from the request (`context.allowed[request.query.token]`) is request data.
fn describe_execution_error(error: &ExecutionError, written_keys: &BTreeSet<String>) -> String {
    let ty = |value: &Value| value.type_of().to_string();
    match error {
        ExecutionError::UnsupportedTargetType { target } => {
            format!("invalid argument type: {}", ty(target))
        }
        ExecutionError::NotSupportedAsMethod { method, target } => {
            format!("method '{method}' not supported on type '{}'", ty(target))
        }
        ExecutionError::UnsupportedKeyType(key) => {
            format!("unable to use {} as a map key", ty(key))
        }
        ExecutionError::ValuesNotComparable(left, right) => {
            format!("{} cannot be compared to {}", ty(left), ty(right))
        }
        ExecutionError::UnsupportedBinaryOperator(operator, left, right) => format!(
            "unsupported binary operator '{operator}' on {} and {}",
            ty(left),
            ty(right)
        ),
        ExecutionError::UnsupportedIndex(index, target) => {
            format!("cannot use {} to index {}", ty(index), ty(target))
        }
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".to_owned(),
        ExecutionError::Overflow(operator, left, right) => {
            format!("overflow in '{operator}' on {} and {}", ty(left), ty(right))
        }
        ExecutionError::IndexOutOfBounds(index) => {
            format!("index out of bounds ({})", ty(index))
        }
        ExecutionError::DuplicateKey(key) => format!("repeated {} key in a map literal", ty(key)),
        // A function's message may quote its input (`duration("<header>")` echoes the string).
        ExecutionError::FunctionError { function, .. } => {
            format!("function '{function}' failed (warrant eval shows the engine's message)")
        }
        // `got` is the value itself, Debug-printed.
        ExecutionError::UnexpectedType { want, .. } => format!("unexpected type, want {want}"),
        ExecutionError::NoSuchKey(key) if !written_keys.contains(key.as_str()) => {
            "no such key (a key computed from the request)".to_owned()
        }
        // Operand-free messages: argument counts, type names, a key or identifier written in
        // the expression.
        ExecutionError::InvalidArgumentCount { .. }
        | ExecutionError::NoSuchKey(_)
        | ExecutionError::NoSuchOverload(_)
        | ExecutionError::UndeclaredReference(_)
        | ExecutionError::MissingArgumentOrTarget => error.to_string(),
        // Deprecated or future variants may carry operands: say only that evaluation failed.
        _ => "evaluation error".to_owned(),
    }
}

impl Expression {
    /// The top-level variables this expression references.
    pub fn variables(&self) -> &BTreeSet<&'static str> {
        &self.variables
    }
}

/// What an expression references.
#[derive(Default)]
struct References {
    /// Top-level variables.
    variables: BTreeSet<&'static str>,
    /// Literal patterns of `matches()` calls.
    patterns: Vec<String>,
    /// String literals and field names.
    written_keys: BTreeSet<String>,
}

/// Walks `expr`, collecting what it references into `used` and rejecting unknown variables,
/// fields of fixed-shape variables, and functions (`known_function(name, member)`).
fn check_references(
    expr: &IdedExpr,
    bound: &mut Vec<String>,
    used: &mut References,
    known_function: &dyn Fn(&str, bool) -> bool,
) -> Result<(), CompileError> {
    match &expr.expr {
        Expr::Ident(name)
            if !bound.iter().any(|b| b == name)
                && !name.starts_with('@')
                && !TYPE_NAMES.contains(&name.as_str()) =>
        {
            used.variables.insert(known_variable(name)?.0);
        }
        Expr::Select(select) => {
            if let Expr::Ident(name) = &select.operand.expr
                && !bound.iter().any(|b| b == name)
            {
                let (variable, fields) = known_variable(name)?;
                if let Some(fields) = fields
                    && !fields.contains(&select.field.as_str())
                {
                    return Err(CompileError::UnknownField {
                        variable: variable.to_owned(),
                        field: select.field.clone(),
                        known: fields.join(", "),
                    });
                }
            }
            used.written_keys.insert(select.field.clone());
            check_references(&select.operand, bound, used, known_function)?;
        }
        Expr::Call(call) => {
            // Operators (`_==_`, `@in`, `!_`, ...) have symbols in their names; identifiers,
            // which a policy author can misspell, do not.
            let is_name = !call.func_name.is_empty()
                && !call.func_name.starts_with(|c: char| c.is_ascii_digit())
                && call
                    .func_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if is_name && !known_function(&call.func_name, call.target.is_some()) {
                return Err(CompileError::UnknownFunction {
                    name: call.func_name.clone(),
                    member: call.target.is_some(),
                });
            }
            if call.func_name == "matches" {
                let pattern = match (&call.target, call.args.as_slice()) {
                    (Some(_), [pattern]) | (None, [_, pattern]) => pattern,
                    _ => {
                        return Err(CompileError::Usage(
                            "matches() takes one pattern: text.matches(pattern) or matches(text, pattern)"
                                .to_owned(),
                        ));
                    }
                };
                if let Expr::Literal(LiteralValue::String(pattern)) = &pattern.expr {
                    used.patterns.push(pattern.inner().to_owned());
                }
            }
            if let Some(target) = &call.target {
                check_references(target, bound, used, known_function)?;
            }
            for arg in &call.args {
                check_references(arg, bound, used, known_function)?;
            }
        }
        Expr::Comprehension(comp) => {
            check_references(&comp.iter_range, bound, used, known_function)?;
            check_references(&comp.accu_init, bound, used, known_function)?;
            let depth = bound.len();
            bound.push(comp.iter_var.clone());
            bound.extend(comp.iter_var2.clone());
            bound.push(comp.accu_var.clone());
            for part in [&comp.loop_cond, &comp.loop_step, &comp.result] {
                check_references(part, bound, used, known_function)?;
            }
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for element in &list.elements {
                check_references(element, bound, used, known_function)?;
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::StructField(field) => {
                        check_references(&field.value, bound, used, known_function)?
                    }
                    EntryExpr::MapEntry(entry) => {
                        check_references(&entry.key, bound, used, known_function)?;
                        check_references(&entry.value, bound, used, known_function)?;
                    }
                }
            }
        }
        Expr::Struct(structure) => {
            for entry in &structure.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    check_references(&field.value, bound, used, known_function)?;
                }
            }
        }
        Expr::Literal(LiteralValue::String(text)) => {
            used.written_keys.insert(text.inner().to_owned());
        }
        // Bound identifiers (comprehension variables), other literals, and any node kind the
        // engine adds later reference nothing we need to check.
        _ => {}
    }
    Ok(())
}

fn known_variable(
    name: &str,
) -> Result<(&'static str, Option<&'static [&'static str]>), CompileError> {
    VARIABLES
        .iter()
        .find(|(variable, _)| *variable == name)
        .copied()
        .ok_or_else(|| CompileError::UnknownVariable(name.to_owned()))
}

/// A CEL value that may borrow from the request for `'a`.
type CelVal<'a> = Box<dyn Val + 'a>;

fn string(s: &str) -> CelVal<'_> {
    Box::new(CelString::from(s))
}

fn int(i: i64) -> CelVal<'static> {
    Box::new(CelInt::from(i))
}

fn map<'a>(entries: impl IntoIterator<Item = (&'static str, CelVal<'a>)>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(map))
}

fn string_map<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> CelVal<'a> {
    let map: HashMap<CelMapKey<'a>, CelVal<'a>> = entries
        .map(|(k, v)| (CelMapKey::from(k), string(v)))
        .collect();
    Box::new(CelMap::from(map))
}

fn list<'a>(items: impl Iterator<Item = CelVal<'a>>) -> CelVal<'a> {
    Box::new(CelList::from(items.collect::<Vec<_>>()))
}

/// `time` as a CEL timestamp; null when chrono cannot represent it (`From<SystemTime>` would
/// panic, and `request.time` comes from the CheckRequest).
fn timestamp(time: SystemTime) -> CelVal<'static> {
    let utc = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs())
            .ok()
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, after.subsec_nanos())),
        Err(before) => {
            let before = before.duration();
            i64::try_from(before.as_secs()).ok().and_then(|secs| {
                DateTime::<Utc>::from_timestamp(-secs, 0).and_then(|t| {
                    t.checked_sub_signed(chrono::Duration::nanoseconds(i64::from(
                        before.subsec_nanos(),
                    )))
                })
            })
        }
    };
    match utc {
        Some(utc) => Box::new(CelTimestamp::from(utc.fixed_offset())),
        None => Box::new(CelNull),
    }
}

fn unix_timestamp(secs: i64) -> CelVal<'static> {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(utc) => Box::new(CelTimestamp::from(utc.fixed_offset())),
        None => Box::new(CelNull),
    }
}

fn source_value<'a>(peer: &'a VerifiedPeer, request: &'a AuthzRequest) -> CelVal<'a> {
    let id = &peer.spiffe_id;
    let (namespace, service_account) = id.istio_namespace_and_service_account().unwrap_or(("", ""));
    let certificate = match &peer.svid {
        Some(svid) => map([
            ("serial", string(svid.serial())),
            ("not_before", unix_timestamp(svid.not_before())),
            ("not_after", unix_timestamp(svid.not_after())),
            (
                "dns_names",
                list(svid.dns_names().iter().map(|n| string(n))),
            ),
        ]),
        None => map([]),
    };
    map([
        ("spiffe_id", string(id.as_str())),
        ("trust_domain", string(id.trust_domain())),
        ("path", string(id.path())),
        ("segments", list(id.segments().map(string))),
        ("namespace", string(namespace)),
        ("service_account", string(service_account)),
        ("principal", string(&request.source.principal)),
        ("address", string(&request.source.address)),
        ("port", int(i64::from(request.source.port))),
        ("certificate", certificate),
    ])
}

fn destination_value(request: &AuthzRequest) -> CelVal<'_> {
    let destination = &request.destination;
    map([
        ("principal", string(&destination.principal)),
        ("address", string(&destination.address)),
        ("port", int(i64::from(destination.port))),
    ])
}

fn request_value(request: &AuthzRequest) -> CelVal<'_> {
    let time = match request.time {
        Some(time) => timestamp(time),
        None => Box::new(CelNull),
    };
    let Some(http) = &request.http else {
        // A check from the network (TCP) filter: no HTTP attributes, empty fields.
        return map([
            ("method", string("")),
            ("path", string("")),
            ("query", map([])),
            ("host", string("")),
            ("scheme", string("")),
            ("protocol", string("")),
            ("headers", map([])),
            ("id", string("")),
            ("time", time),
        ]);
    };
    let mut query: HashMap<CelMapKey<'_>, CelVal<'_>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(http.query_string().as_bytes()) {
        // The first occurrence of a repeated parameter wins.
        query
            .entry(CelMapKey::String(CelString::from(k)))
            .or_insert_with(|| Box::new(CelString::from(v)));
    }
    map([
        ("method", string(&http.method)),
        ("path", string(http.path_without_query())),
        ("query", Box::new(CelMap::from(query))),
        ("host", string(&http.host)),
        ("scheme", string(&http.scheme)),
        ("protocol", string(&http.protocol)),
        (
            "headers",
            string_map(http.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
        ("id", string(&http.id)),
        ("time", time),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_has_no_matches_of_its_own() {
        // Warrant's `matches` is added to the root context, which only works while the engine
        // is built without its `regex` feature (Cargo.toml); otherwise the engine's would win
        // silently, compiling every pattern per call.
        let mut root = Context::with_env(Arc::new(Env::stdlib()));
        assert!(root.add_function("matches", |a: i64| a).is_ok());
    }

    #[test]
    fn matches_arity_and_types() {
        let mut env = CelEnv::default();
        for source in [r#""a".matches("a", "b")"#, r#"matches("a")"#] {
            assert!(
                matches!(env.compile(source), Err(CompileError::Usage(_))),
                "{source}"
            );
        }
        let expression = env.compile(r#"matches(1, "a")"#).unwrap();
        env.seal();
        let activation = Activation {
            scope: env.root.new_inner_scope(),
        };
        assert!(env.eval(&expression, &activation).is_err());
    }
}
