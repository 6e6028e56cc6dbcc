//! The reference checker: what an expression uses, checked when the policy loads, so that a
//! misspelt name fails `warrant check` instead of failing (or silently never matching) on
//! every request.
//!
//! Rejected: unknown variables; unknown fields of the fixed-shape variables (`source`,
//! `destination`, `request`); unknown functions (names are case-sensitive); and header names
//! with capitals (or that no request can carry) used to look up `request.headers`, whose keys
//! are always lower case — by index, `in`, field selection, `has()`, the optional forms, a
//! variable ranging over a list literal, or by comparing the key variable of a macro over
//! `request.headers` with a literal or a pattern.

use std::collections::BTreeSet;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr, LiteralValue, operators};

use super::environment::{self, HeadersRead};
use super::header_names::{compared_header_names, header_key};
use super::literals::{literal_strings, string_literal};
use super::normal_form::{Form, header_form};
use super::{CompileError, TYPE_NAMES};

/// What an expression references.
#[derive(Debug, Default)]
pub(super) struct References {
    /// Top-level variables.
    pub variables: BTreeSet<&'static str>,
    /// String literals and field names: the map keys an error may name without revealing
    /// anything from the request.
    pub written_keys: BTreeSet<String>,
    /// The headers it can observe (see [`HeadersRead`]).
    pub headers_read: HeadersRead,
}

/// Walks `expr` (recursively: its depth must already be bounded), collecting what it
/// references and rejecting what cannot work. `known_function(name, member)` says whether the
/// engine has a function.
pub(super) fn check(
    expr: &IdedExpr,
    known_function: &dyn Fn(&str, bool) -> bool,
) -> Result<References, CompileError> {
    let mut checker = Checker {
        scope: Vec::new(),
        used: References::default(),
        keyed_lookups: BTreeSet::new(),
        selected_variables: BTreeSet::new(),
        known_function,
    };
    checker.walk(expr)?;
    Ok(checker.used)
}

struct Checker<'f> {
    /// Comprehension variables in scope, innermost last, with what each stands for.
    scope: Vec<(String, Binding)>,
    used: References,
    /// Ids of the `request.headers` nodes that a literal key looks up (`request.headers["x"]`,
    /// `"x" in request.headers`, `request.headers.x`, `has(request.headers.x)`); any other
    /// `request.headers` node makes every header observable.
    keyed_lookups: BTreeSet<u64>,
    /// Ids of the variable nodes whose field a literal name selects (`request` in
    /// `request.headers` or `request["path"]`): reading a field is not reading it whole.
    selected_variables: BTreeSet<u64>,
    known_function: &'f dyn Fn(&str, bool) -> bool,
}

/// What a comprehension variable stands for, as far as the checker follows it.
#[derive(Debug, Clone)]
enum Binding {
    /// Nothing the checker follows.
    Opaque,
    /// The `request` variable (`[request].exists(r, "x-a" in r.headers)`).
    Request,
    /// `request.headers` (`[request.headers].exists(h, "x-a" in h)`).
    Headers,
    /// An attribute in a normal form, by name
    /// (`source.certificate.dns_names.exists(n, n == "api.example.org")`).
    Normalized(String, Form),
    /// The string literals of the list it ranges over
    /// (`["X-A", "x-b"].exists(h, h in request.headers)`).
    Literals(Vec<String>),
}

impl Checker<'_> {
    /// What `name` stands for, when a comprehension binds it (the innermost binding wins).
    fn binding(&self, name: &str) -> Option<&Binding> {
        self.scope
            .iter()
            .rev()
            .find(|(bound, _)| bound == name)
            .map(|(_, binding)| binding)
    }

    /// Records a lookup of the literal `key` in `map` when `map` is `request.headers`.
    fn note_keyed_lookup(&mut self, map: &IdedExpr, key: &str) {
        let map = unwrap_dyn(map);
        if self.field_access(map) == Some(("request", "headers")) {
            self.keyed_lookups.insert(map.id);
            self.used.headers_read.insert(key);
        }
    }

    /// Makes every header observable when `expr` is `request.headers` and no literal key
    /// looks it up (see [`Checker::note_keyed_lookup`]).
    fn note_unkeyed_headers(&mut self, expr: &IdedExpr) {
        if self.field_access(expr) == Some(("request", "headers"))
            && !self.keyed_lookups.contains(&expr.id)
        {
            self.used.headers_read = HeadersRead::All;
        }
    }

    /// Records that a literal name selects a field of `operand`, when it is a variable.
    fn note_field_selection(&mut self, operand: &IdedExpr) {
        let operand = unwrap_dyn(operand);
        if matches!(operand.expr, Expr::Ident(_)) {
            self.selected_variables.insert(operand.id);
        }
    }

    fn is_bound(&self, name: &str) -> bool {
        self.binding(name).is_some()
    }

    /// What the variable of a macro over `range` stands for: a binding when every element
    /// the variable can take is the same followed thing.
    fn range_binding(&self, range: &IdedExpr) -> Binding {
        if let Some((attribute, form)) = self.normalized_elements(range) {
            return Binding::Normalized(attribute, form);
        }
        let Expr::List(list) = &range.expr else {
            return Binding::Opaque;
        };
        let all = |test: &dyn Fn(&IdedExpr) -> bool| {
            !list.elements.is_empty() && list.elements.iter().all(test)
        };
        if all(
            &|e| matches!(&e.expr, Expr::Ident(name) if name == "request" && !self.is_bound(name)),
        ) {
            return Binding::Request;
        }
        if all(&|e| self.is_request_headers(e)) {
            return Binding::Headers;
        }
        let literals = literal_strings(range);
        if literals.is_empty() {
            Binding::Opaque
        } else {
            Binding::Literals(literals)
        }
    }

    /// `variable.field`, `variable["field"]` and their optional forms, when `variable` is a
    /// top-level variable (not a bound name) and `field` is written.
    fn field_access<'e>(&self, expr: &'e IdedExpr) -> Option<(&'e str, &'e str)> {
        let (operand, field) = match &expr.expr {
            Expr::Select(select) => (&*select.operand, select.field.as_str()),
            Expr::Call(call) => match (call.func_name.as_str(), &call.target, &call.args[..]) {
                (
                    operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT,
                    None,
                    [operand, key],
                ) => match &key.expr {
                    Expr::Literal(LiteralValue::String(key)) => (operand, key.inner()),
                    _ => return None,
                },
                _ => return None,
            },
            _ => return None,
        };
        match &unwrap_dyn(operand).expr {
            Expr::Ident(name) => match self.binding(name) {
                None => Some((name.as_str(), field)),
                Some(Binding::Request) => Some(("request", field)),
                Some(_) => None,
            },
            _ => None,
        }
    }

    /// Whether `expr` is `request.headers` (or `request["headers"]`), with `request` the
    /// variable, not a bound name.
    fn is_request_headers(&self, expr: &IdedExpr) -> bool {
        let expr = unwrap_dyn(expr);
        if let Expr::Ident(name) = &expr.expr
            && let Some(Binding::Headers) = self.binding(name)
        {
            return true;
        }
        self.field_access(expr) == Some(("request", "headers"))
    }

    /// The literal strings a key expression stands for: a literal, or a variable ranging
    /// over a list literal.
    fn literal_keys(&self, key: &IdedExpr) -> Vec<String> {
        if let Some(name) = string_literal(key) {
            return vec![name.to_owned()];
        }
        match &key.expr {
            Expr::Ident(name) => match self.binding(name) {
                Some(Binding::Literals(keys)) => keys.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// The attribute `expr` reads, when Warrant hands it to rules in one normal form (see
    /// `AuthzRequest::canonical`): its name and form.
    fn normalized(&self, expr: &IdedExpr) -> Option<(String, Form)> {
        let expr = unwrap_dyn(expr);
        if let Expr::Ident(name) = &expr.expr
            && let Some(Binding::Normalized(attribute, form)) = self.binding(name)
        {
            return Some((attribute.clone(), *form));
        }
        // `request.headers.host`: a header selected as a field.
        if let Expr::Select(select) = &expr.expr
            && self.is_request_headers(&select.operand)
        {
            return header_form(&select.field)
                .map(|form| (format!("request.headers.{}", select.field), form));
        }
        if let Some((variable, field)) = self.field_access(expr) {
            let form = match (variable, field) {
                ("request", "host" | "scheme" | "tls_sni") | ("source", "trust_domain") => {
                    Form::Lower
                }
                ("request", "hostname") => Form::Hostname,
                ("request", "method") => Form::Upper,
                ("source", "spiffe_id" | "principal") => Form::SpiffeId,
                _ => return None,
            };
            return Some((format!("{variable}.{field}"), form));
        }
        let Expr::Call(call) = &expr.expr else {
            return None;
        };
        match (call.func_name.as_str(), &call.args[..]) {
            (operators::INDEX | operators::OPT_INDEX, [map, key])
                if self.is_request_headers(map) =>
            {
                let Expr::Literal(LiteralValue::String(key)) = &key.expr else {
                    return None;
                };
                let form = header_form(key.inner())?;
                Some((format!("request.headers[{:?}]", key.inner()), form))
            }
            _ => None,
        }
    }

    /// The normal form shared by the elements of `range`, when a macro ranges over it: the
    /// DNS names of the certificate, or a list literal of attributes in one form.
    fn normalized_elements(&self, range: &IdedExpr) -> Option<(String, Form)> {
        if self.is_dns_names(range) {
            return Some(("source.certificate.dns_names".to_owned(), Form::Lower));
        }
        let Expr::List(list) = &unwrap_dyn(range).expr else {
            return None;
        };
        let mut forms = list.elements.iter().map(|e| self.normalized(e));
        let first = forms.next()??;
        forms
            .all(|other| other.is_some_and(|(_, form)| form == first.1))
            .then_some(first)
    }

    /// Whether `expr` is `source.certificate.dns_names` (lower-case names).
    fn is_dns_names(&self, expr: &IdedExpr) -> bool {
        matches!(&expr.expr, Expr::Select(names) if names.field == "dns_names"
            && self.field_access(&names.operand) == Some(("source", "certificate")))
    }

    /// A literal compared with an attribute in normal form that it can never equal:
    /// `request.hostname == "Admin.Example.Org"`, `request.method in ["get"]`,
    /// `request.scheme.startsWith("HTTP")`, `"Web.Example.Org" in source.certificate.dns_names`.
    fn check_normalized_comparison(
        &self,
        call: &cel::common::ast::CallExpr,
    ) -> Result<(), CompileError> {
        let strings = literal_strings;
        let (attribute, form, literals, whole) =
            match (call.func_name.as_str(), &call.target, &call.args[..]) {
                (operators::EQUALS | operators::NOT_EQUALS, None, [a, b]) => {
                    match (self.normalized(a), self.normalized(b)) {
                        (Some((attribute, form)), _) => (attribute, form, strings(b), true),
                        (_, Some((attribute, form))) => (attribute, form, strings(a), true),
                        _ => return Ok(()),
                    }
                }
                (operators::IN, None, [item, list]) => {
                    if let Some((attribute, form)) = self.normalized(item) {
                        (attribute, form, strings(list), true)
                    } else if self.is_dns_names(list) {
                        (
                            "source.certificate.dns_names".to_owned(),
                            Form::Lower,
                            strings(item),
                            true,
                        )
                    } else {
                        return Ok(());
                    }
                }
                ("startsWith" | "endsWith" | "contains" | "glob", Some(target), [arg]) => {
                    match self.normalized(target) {
                        Some((attribute, form)) => (attribute, form, strings(arg), false),
                        None => return Ok(()),
                    }
                }
                ("glob", None, [target, arg]) => match self.normalized(target) {
                    Some((attribute, form)) => (attribute, form, strings(arg), false),
                    None => return Ok(()),
                },
                _ => return Ok(()),
            };
        for written in literals {
            if let Some((described, suggestion)) = form.mismatch(&written, whole) {
                return Err(CompileError::NeverMatches {
                    attribute,
                    form: described,
                    written,
                    suggestion,
                });
            }
        }
        Ok(())
    }

    /// Rejects `variable["field"]` on a fixed-shape variable without that field.
    fn check_field(&self, expr: &IdedExpr) -> Result<(), CompileError> {
        let Some((name, field)) = self.field_access(expr) else {
            return Ok(());
        };
        let (variable, fields) = known_variable(name)?;
        match fields {
            Some(fields) if !fields.contains(&field) => Err(CompileError::UnknownField {
                variable: variable.to_owned(),
                field: field.to_owned(),
                known: fields.join(", "),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a key that a fixed-key map field (`request.grpc`) never has, however it is
    /// written: `request.grpc.servce`, `has(...)` of it, `request.grpc["servce"]`,
    /// `request.grpc.?servce`, `"servce" in request.grpc`.
    fn check_map_key(&self, expr: &IdedExpr) -> Result<(), CompileError> {
        let (map, key) = match &expr.expr {
            Expr::Select(select) => (&*select.operand, select.field.as_str()),
            Expr::Call(call) => match (call.func_name.as_str(), &call.args[..]) {
                (operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT, [map, key])
                | (operators::IN, [key, map]) => match string_literal(key) {
                    Some(key) => (map, key),
                    None => return Ok(()),
                },
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        let Some((variable, field)) = self.field_access(map) else {
            return Ok(());
        };
        let declared = environment::variable(variable).and_then(|v| match &v.shape {
            environment::Shape::Fields(fields) => fields.iter().find(|f| f.name == field),
            _ => None,
        });
        match declared {
            Some(declared) if !declared.keys.is_empty() && !declared.keys.contains(&key) => {
                Err(CompileError::UnknownField {
                    variable: format!("{variable}.{field}"),
                    field: key.to_owned(),
                    known: declared.keys.join(", "),
                })
            }
            _ => Ok(()),
        }
    }

    fn walk(&mut self, expr: &IdedExpr) -> Result<(), CompileError> {
        match &expr.expr {
            Expr::Ident(name)
                if !self.is_bound(name)
                    && !name.starts_with('@')
                    && !TYPE_NAMES.contains(&name.as_str()) =>
            {
                let variable = known_variable(name)?.0;
                self.used.variables.insert(variable);
                if variable == "request" && !self.selected_variables.contains(&expr.id) {
                    // The whole request, headers and all.
                    self.used.headers_read = HeadersRead::All;
                }
            }
            Expr::Select(select) => {
                self.check_field(expr)?;
                self.check_map_key(expr)?;
                if self.is_request_headers(&select.operand) {
                    header_key(&select.field)?;
                }
                self.used.written_keys.insert(select.field.clone());
                self.note_keyed_lookup(&select.operand, &select.field);
                self.note_field_selection(&select.operand);
                self.note_unkeyed_headers(expr);
                self.walk(&select.operand)?;
            }
            Expr::Call(call) => {
                // `optional.of(x)`: a namespaced function, not a method of a variable.
                if let Some(target) = &call.target
                    && let Expr::Ident(namespace) = &target.expr
                    && !self.is_bound(namespace)
                    && known_variable(namespace).is_err()
                {
                    self.check_function(&format!("{namespace}.{}", call.func_name), false)?;
                    for arg in &call.args {
                        self.walk(arg)?;
                    }
                    return Ok(());
                }
                self.check_function(&call.func_name, call.target.is_some())?;
                self.check_field(expr)?;
                self.check_map_key(expr)?;
                self.check_header_lookup(&call.func_name, &call.args)?;
                self.check_normalized_comparison(call)?;
                match (call.func_name.as_str(), &call.target, &call.args[..]) {
                    (
                        operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT,
                        None,
                        [map, key],
                    )
                    | (operators::IN, None, [key, map]) => {
                        if let Some(key) = string_literal(key) {
                            self.note_keyed_lookup(map, key);
                            if call.func_name != operators::IN {
                                self.note_field_selection(map);
                            }
                        }
                    }
                    _ => {}
                }
                self.note_unkeyed_headers(expr);
                if let Some(target) = &call.target {
                    self.walk(target)?;
                }
                for arg in &call.args {
                    self.walk(arg)?;
                }
            }
            Expr::Comprehension(comp) => {
                self.walk(&comp.iter_range)?;
                self.walk(&comp.accu_init)?;
                if self.is_request_headers(&comp.iter_range) {
                    for part in [&comp.loop_cond, &comp.loop_step, &comp.result] {
                        compared_header_names(part, &comp.iter_var)?;
                    }
                }
                let depth = self.scope.len();
                let binding = self.range_binding(&comp.iter_range);
                self.scope.push((comp.iter_var.clone(), binding));
                if let Some(second) = &comp.iter_var2 {
                    self.scope.push((second.clone(), Binding::Opaque));
                }
                self.scope.push((comp.accu_var.clone(), Binding::Opaque));
                for part in [&comp.loop_cond, &comp.loop_step, &comp.result] {
                    self.walk(part)?;
                }
                self.scope.truncate(depth);
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.walk(element)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::StructField(field) => self.walk(&field.value)?,
                        EntryExpr::MapEntry(entry) => {
                            self.walk(&entry.key)?;
                            self.walk(&entry.value)?;
                        }
                    }
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    if let EntryExpr::StructField(field) = &entry.expr {
                        self.walk(&field.value)?;
                    }
                }
            }
            Expr::Literal(LiteralValue::String(text)) => {
                self.used.written_keys.insert(text.inner().to_owned());
            }
            // Bound identifiers (comprehension variables), other literals, and any node kind
            // the engine adds later reference nothing we need to check.
            _ => {}
        }
        Ok(())
    }

    /// Rejects a function the engine does not have. Operators (`_==_`, `@in`, `!_`, ...) have
    /// symbols in their names; identifiers, which a policy author can misspell, do not.
    fn check_function(&self, name: &str, member: bool) -> Result<(), CompileError> {
        let is_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if is_name && !(self.known_function)(name, member) {
            return Err(CompileError::UnknownFunction {
                name: name.to_owned(),
                member,
            });
        }
        Ok(())
    }

    /// `request.headers["X-A"]`, `request.headers[?"X-A"]`, `request.headers.?X_A` and
    /// `"X-A" in request.headers`.
    fn check_header_lookup(&self, function: &str, args: &[IdedExpr]) -> Result<(), CompileError> {
        let key = match (function, args) {
            (operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT, [map, key])
            | (operators::IN, [key, map])
                if self.is_request_headers(map) =>
            {
                key
            }
            _ => return Ok(()),
        };
        self.literal_keys(key)
            .iter()
            .try_for_each(|name| header_key(name))
    }
}

/// `dyn(x)` is `x` to the checker (it only changes how the engine types `x`).
fn unwrap_dyn(expr: &IdedExpr) -> &IdedExpr {
    match &expr.expr {
        Expr::Call(call)
            if call.func_name == "dyn" && call.target.is_none() && call.args.len() == 1 =>
        {
            unwrap_dyn(&call.args[0])
        }
        _ => expr,
    }
}

/// The declared variable `name`, with its field names when it has fixed ones.
fn known_variable(name: &str) -> Result<(&'static str, Option<Vec<&'static str>>), CompileError> {
    environment::variable(name)
        .map(|variable| (variable.name, variable.fields().map(Iterator::collect)))
        .ok_or_else(|| CompileError::UnknownVariable {
            name: name.to_owned(),
        })
}
