//! The one module that talks to the CEL engine (`cel` crate), split by job:
//! - this file: the engine wrapper — compiling rule expressions and evaluating them;
//! - [`nesting`]: how deeply an expression may nest (the engine recurses per level);
//! - [`references`]: what an expression may reference, checked at load, with
//!   [`header_names`] and [`normal_form`] for literals that could never match;
//! - [`constants`]: what would fail on every request, refused at load;
//! - [`lexer`]: CEL's lexical grammar, for the nesting scan;
//! - [`environment`]: every variable declared once (type, fields, docs, how it is built),
//!   which the checker, the per-request activation and `docs/cel.md` follow;
//! - [`data`]: the operator's `data`, converted once at load;
//! - [`error_text`]: evaluation errors that never quote request values;
//! - [`functions`]: Warrant's own functions, declared once in a table, and the one
//!   mechanism that compiles their arguments at load.
//!
//! When the engine's API changes, only this module changes.
//!
//! Cost model (measured on `cel` 0.15): building a root `Context` registers every builtin
//! (~35 µs), a child scope of a shared root costs ~1 µs. So one root is built when the policy
//! loads and each request gets a child scope whose variables are built when a rule first
//! reads them (see [`activation`]).

mod activation;
mod constants;
pub(crate) mod data;
mod environment;
mod error_text;
mod functions;
mod header_names;
mod lexer;
mod literals;
mod nesting;
mod normal_form;
mod references;
mod shortcut;
mod values;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cel::common::ast::IdedExpr;
use cel::{Context, Env, ExecutionError, Value};

pub(super) use activation::Activation;
pub(crate) use activation::RequestVariables;
pub use environment::{Field, HeadersRead, Shape, VARIABLES, Variable};
pub use functions::glob::Glob;
pub use nesting::MAX_DEPTH;

use functions::FUNCTIONS;

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
    /// The expression does not parse as CEL; holds the parser's message.
    #[error("CEL syntax error: {0}")]
    Syntax(String),
    /// The expression names a variable Warrant does not declare.
    #[error(
        "unknown variable {name:?}; known variables are {}",
        environment::VARIABLES.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
    )]
    UnknownVariable {
        /// The variable as written.
        name: String,
    },
    /// The expression calls a function Warrant does not provide (names are case-sensitive).
    #[error(
        "unknown function {name}(){}; names are case-sensitive (see docs/cel.md for the functions available)",
        if *.member { " called as a method" } else { "" }
    )]
    UnknownFunction {
        /// The function as written.
        name: String,
        /// Whether it was called as a method (`x.f()`) rather than as `f(x)`.
        member: bool,
    },
    /// A known function is called wrongly (arity, or as a method when it is not one), or the
    /// expression has a message literal; holds what is wrong and how to write it.
    #[error("{0}")]
    Usage(String),
    /// The expression nests operators more deeply than the limit (`&&` and `||` do not count).
    #[error(
        "expression is nested too deeply ({}{depth} levels; the limit is {}): each operator \
         applied to the result of another nests one level, except && and ||; write a long \
         allowlist as one list literal (x in [\"a\", \"b\", ...]), not a chain of +",
        if *estimated { "about " } else { "" },
        nesting::MAX_DEPTH
    )]
    NestedTooDeeply {
        /// The depth found, or an upper bound on it when `estimated` (the expression was
        /// refused before parsing).
        depth: usize,
        /// Whether `depth` is an upper bound: the expression was refused before parsing.
        estimated: bool,
    },
    /// A header name the expression looks up has capitals, so it never matches
    /// (`request.headers` has lower-case names).
    #[error(
        "header {written:?} never matches: request.headers has lower-case names; write {:?}",
        written.to_ascii_lowercase()
    )]
    HeaderNameCase {
        /// The header name as written.
        written: String,
    },
    /// A string the expression looks up as a header name is not an HTTP token (RFC 9110
    /// §5.6.2), so it never matches.
    #[error(
        "header {written:?} never matches: it is not a header name (an HTTP token: letters, digits and !#$%&'*+-.^_`|~)"
    )]
    NotAHeaderName {
        /// The string as written.
        written: String,
    },
    /// A call on literals fails when the policy loads (e.g. a pattern that does not compile),
    /// so it would fail on every request.
    #[error("{call} fails on every request: {reason}")]
    InvalidLiteral {
        /// The call as text, with its literal arguments.
        call: String,
        /// Why it fails, from the engine.
        reason: String,
    },
    /// A rule's `when` is certainly not a bool: a literal, arithmetic, or a variable's value.
    #[error("the expression is {kind}, not a bool: a rule's `when` must be a condition")]
    NotBoolAtLoad {
        /// What it is instead, e.g. `a list` or `arithmetic`.
        kind: &'static str,
    },
    /// A literal compared with an attribute is not in the form the attribute's values always
    /// have (e.g. a host with capitals), so it never matches.
    #[error("{attribute} is always {form}: {written:?} never matches; write {suggestion:?}")]
    NeverMatches {
        /// The attribute, e.g. `request.host`.
        attribute: String,
        /// The form its values always have, e.g. `in lower case`.
        form: &'static str,
        /// The literal as written.
        written: String,
        /// The literal in that form, which can match.
        suggestion: String,
    },
    /// The expression reads a key that the policy's data does not have, without testing for
    /// it first.
    #[error("{path} is not in the policy's data: {}", DATA_KEY_MISSING)]
    NotInData {
        /// The path into data as written, e.g. `data.teams.payments`.
        path: String,
    },
    /// The expression selects a field that a fixed-shape variable, or a key that a fixed-key
    /// map such as `request.grpc`, does not have.
    #[error("unknown field {variable}.{field}; {variable} has {known}")]
    UnknownField {
        /// The variable (or variable and field, `request.grpc`) it is selected from.
        variable: String,
        /// The field or key as written.
        field: String,
        /// The fields or keys it has, comma-separated.
        known: String,
    },
}

/// How [`CompileError::NotInData`] ends; the policy loader adds the keys data has.
pub(super) const DATA_KEY_MISSING: &str = "no such key, so reading it always fails (test for it first with has() or `in` if it may be absent)";

/// Why a compiled expression failed on one request. `Display` never includes request values
/// (it goes to spans and logs); [`EvalError::detail`] is the engine's own message, which may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The engine failed to evaluate the expression (e.g. a missing key, or no overload for
    /// the operand types).
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

/// Stack for parsing and checking one expression. Parsing recurses per level of nesting and
/// costs up to ~160 KiB a level in a debug build (see [`nesting`]), so it runs on a stack of
/// its own, whatever thread loads the policy (a runtime worker has 2 MiB). Only the pages
/// used are ever touched.
const PARSE_STACK: usize = 64 << 20;

/// The stack that evaluating a rule of [`MAX_DEPTH`] may need (measured ~2.6 MiB in a debug
/// build, ~130 KiB in a release build), with room to spare; with less left on the current
/// thread, evaluation moves to a stack of [`EVAL_STACK`].
const EVAL_RED_ZONE: usize = if cfg!(debug_assertions) {
    4 << 20
} else {
    512 << 10
};
const EVAL_STACK: usize = 2 * EVAL_RED_ZONE;

/// Runs `evaluate` (the evaluation of a request's rules) where the stack is deep enough for
/// any expression the policy accepted: on this thread when enough of it is left, else on a
/// fresh stack. Costs a comparison on the usual path.
pub(super) fn with_evaluation_stack<R>(evaluate: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(EVAL_RED_ZONE, EVAL_STACK, evaluate)
}

/// The CEL environment shared by every rule of a policy: the standard library plus the
/// root context that per-request scopes borrow.
pub(super) struct CelEnv {
    env: Arc<Env>,
    /// Warrant's functions, and the arguments compiled at load (`@0`, `@1`, …).
    root: Context<'static, 'static>,
    /// How many arguments are bound in `root`.
    compiled_arguments: usize,
}

impl fmt::Debug for CelEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelEnv").finish_non_exhaustive()
    }
}

impl Default for CelEnv {
    fn default() -> Self {
        // The engine is built without its `regex` feature, so the standard library has no
        // `matches`: Warrant provides it (see `functions::matches`).
        let mut env = Env::stdlib();
        // The engine's own CEL strings extension (cel-go's `ext.Strings`: `lowerAscii`,
        // `split`, `join`, `replace`, `substring`, `format`, ...) and `base64.encode/decode`.
        // Declaring them cannot clash with the standard library; were it to fail, their names
        // would be unknown functions, refused at load (a test checks they are there).
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::encoders);
        let env = Arc::new(env);
        let mut root = Context::with_env(Arc::clone(&env));
        // No name conflicts with the engine's: its `matches` is compiled out (Cargo.toml),
        // the others are not among its functions (a test checks each is Warrant's) and names
        // starting with `@` cannot be written in a rule.
        for function in FUNCTIONS {
            let _ = root.add_function(function.name, (function.implementation)());
        }
        let mut cel = Self {
            root,
            env,
            compiled_arguments: 0,
        };
        cel.bind_data(&serde_json::Map::new());
        cel
    }
}

/// One compiled rule expression.
#[derive(Debug)]
pub(super) struct Expression {
    /// The syntax tree, at most [`MAX_DEPTH`] deep, with Warrant's load-time rewrites.
    expr: IdedExpr,
    variables: BTreeSet<&'static str>,
    /// The string literals and field names written in the expression: the map keys an error
    /// may name without revealing anything from the request.
    written_keys: BTreeSet<String>,
    /// The syntax tree as written, as text without node ids: see [`Expression::canonical`].
    canonical: String,
    /// The part of it Warrant decides without the engine (see [`shortcut`]).
    shortcut: Option<shortcut::Shortcut>,
    /// The entries of `request.headers` it can observe.
    headers_read: HeadersRead,
}

impl Expression {
    /// The top-level variables this expression references.
    pub(super) fn variables(&self) -> &BTreeSet<&'static str> {
        &self.variables
    }

    /// Whether it is made only of shapes Warrant decides itself (see [`shortcut`]) whose cost
    /// is bounded by its own literals, whatever the request (no `contains`).
    pub(super) fn is_cheap(&self) -> bool {
        self.shortcut
            .as_ref()
            .is_some_and(shortcut::Shortcut::is_bounded)
    }

    /// The entries of `request.headers` it can observe.
    pub(super) fn headers_read(&self) -> &HeadersRead {
        &self.headers_read
    }

    /// The syntax tree as written, as text without node ids: two expressions with the same
    /// canonical form are the same expression, whatever their spacing, comments and
    /// redundant parentheses.
    pub(super) fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// `text` (a syntax tree's `Debug` output) without its node ids: `IdedExpr { id: N, ` becomes
/// `IdedExpr { ` (only a string literal holding that very text could be confused).
fn without_ids(text: &str) -> String {
    const NODE: &str = "IdedExpr { id: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(NODE) {
        let after = &rest[at + NODE.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..at]);
        out.push_str("IdedExpr { ");
        rest = match after[digits..].strip_prefix(", ") {
            Some(tail) if digits > 0 => tail,
            _ => after,
        };
    }
    out.push_str(rest);
    out
}

/// Parses `source` with the engine (on a large stack: see [`CelEnv::compile`]). The engine's
/// parse errors are rendered here, not with their `Display`, which panics on a column past
/// 65,535 (a long one-line allowlist with a typo); and a panic in the engine's parser
/// becomes a syntax error rather than a crash of whatever is loading the policy.
fn parse(env: &Env, source: &str) -> Result<IdedExpr, CompileError> {
    let parsed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.parser().parse(source)))
            .map_err(|_| CompileError::Syntax("the expression could not be parsed".to_owned()))?;
    parsed.map_err(|errors| {
        // The engine's own guard: more than 96 nested groups (parentheses, lists, calls).
        if errors
            .errors
            .iter()
            .any(|e| e.msg.to_ascii_lowercase().contains("recursion limit"))
        {
            return CompileError::NestedTooDeeply {
                depth: 97,
                estimated: true,
            };
        }
        let located: Vec<String> = errors
            .errors
            .iter()
            .map(|e| {
                let message = e.msg.strip_prefix("Syntax error: ").unwrap_or(&e.msg);
                format!("{message} at {}:{}", e.pos.0, e.pos.1)
            })
            .collect();
        CompileError::Syntax(located.join("; "))
    })
}

impl CelEnv {
    /// Compiles `source`: checks its nesting (before and after parsing), that it only
    /// references known variables, fields and functions and looks headers up by lower-case
    /// names, and compiles the arguments of Warrant's functions known at load (an invalid
    /// one is an error). Safe on any thread, whatever `source` holds.
    pub(super) fn compile(&mut self, source: &str) -> Result<Expression, CompileError> {
        nesting::check_source(source)?;
        let (expr, references, canonical, shortcut) = stacker::grow(PARSE_STACK, || {
            // Everything that walks the tree recursively, including dropping a rejected one,
            // stays on this stack.
            let mut expr = parse(&self.env, source)?;
            nesting::check_tree(&expr)?;
            let known_function = |name: &str, member: bool| self.has_function(name, member);
            let references = references::check(&expr, &known_function)?;
            constants::check(&expr, &self.root)?;
            let canonical = without_ids(&format!("{expr:?}"));
            functions::time::rewrite_accessors(&mut expr);
            functions::compile_arguments(&mut expr, &mut |argument, compile, each| {
                self.bind_compiled(argument, compile, each)
            })?;
            let shortcut = shortcut::Shortcut::compile(&expr);
            Ok::<_, CompileError>((expr, references, canonical, shortcut))
        })?;
        Ok(Expression {
            canonical,
            shortcut,
            expr,
            variables: references.variables,
            written_keys: references.written_keys,
            headers_read: references.headers_read,
        })
    }

    /// Binds the operator's data as `data` (an empty map when the policy has none). Call it
    /// before compiling rules: rules that read `data` are checked against it, and function
    /// arguments from it are compiled at load.
    pub(super) fn bind_data(&mut self, data: &serde_json::Map<String, serde_json::Value>) {
        let value = data::to_cel_indexed(&serde_json::Value::Object(data.clone()));
        self.root.add_variable_as_val("data", value);
    }

    /// Evaluates `argument` (known at load), compiles it and binds it in the root context;
    /// returns the name it is bound under, or `None` when it cannot be evaluated at load.
    fn bind_compiled(
        &mut self,
        argument: &IdedExpr,
        compile: functions::compiled::Compile,
        each: functions::compiled::Each,
    ) -> Result<Option<String>, String> {
        use functions::compiled::{Each, Picks};
        // A literal always evaluates; a path into data that does not is checked by
        // `constants` (a missing key) or may be guarded (an index out of range).
        let Ok(value) = Value::resolve(argument, &self.root) else {
            return Ok(None);
        };
        let compiled: functions::compiled::Compiled = match each {
            Each::Value => compile(&value)?,
            Each::Element => {
                // A macro iterates a list's elements and a map's keys.
                let items: Vec<Value> = match &value {
                    Value::List(items) => items.to_vec(),
                    Value::Map(map) => map.map.keys().map(|k| Value::from(k.clone())).collect(),
                    _ => return Ok(None),
                };
                let mut picks = Picks::default();
                for (i, item) in items.iter().enumerate() {
                    let compiled =
                        compile(item).map_err(|reason| format!("element {i}: {reason}"))?;
                    if let Value::String(text) = item {
                        picks.0.insert(text.to_string(), compiled);
                    }
                }
                std::sync::Arc::new(picks)
            }
        };
        let name = format!("@{}", self.compiled_arguments);
        self.compiled_arguments += 1;
        self.root
            .add_variable_as_val(name.clone(), Box::new(functions::compiled::Bound(compiled)));
        Ok(Some(name))
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
            // The probe references nothing but the function (and, for `optional.of`, its
            // namespace).
            Ok(program) => !matches!(
                program.execute(&self.root),
                Err(ExecutionError::UndeclaredReference(_))
            ),
            // Not a plain name: nothing to check.
            Err(_) => true,
        }
    }
}

impl CelEnv {
    /// Evaluates `expression` in `activation`; only `true` matches. Call it within
    /// [`with_evaluation_stack`].
    pub(super) fn eval(
        &self,
        expression: &Expression,
        activation: &Activation<'_, '_>,
    ) -> Result<bool, EvalError> {
        if let (Some(shortcut), Some(variables)) = (&expression.shortcut, activation.variables)
            && let Some(matched) = shortcut.decide(variables)
        {
            return Ok(matched);
        }
        match Value::resolve(&expression.expr, &activation.scope) {
            Ok(Value::Bool(matched)) => Ok(matched),
            Ok(other) => Err(EvalError::NotBool(other.type_of().to_string())),
            Err(e) => Err(EvalError::Execution {
                summary: error_text::describe(&e, &expression.written_keys),
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

#[cfg(test)]
mod tests;
