//! A request's activation: its variables, built only when a rule reads them.
//!
//! Nothing is built up front. The engine asks for each name a rule reads through `cel`'s
//! `VariableResolver`: the qualified name first (`request.path`), then its prefixes
//! (`request`), innermost scope first — CEL's name resolution, where the longest name that
//! resolves wins (CEL language definition, "Name Resolution"). So a rule that selects a field
//! (`request.path`, `source.certificate.serial`) gets that field's value directly, without the
//! variable's map being built; a rule that reads a variable whole (`request.size()`,
//! `[request]`, `has(request.body)`) gets the whole map. Every value is built at most once per
//! request and shared by every rule evaluated for it, and an unread one is never built.
//!
//! What a rule sees is exactly what it would see if every variable were bound as a map: a
//! field's value comes from the same builder (see [`environment::VARIABLES`]) either way. A
//! comprehension variable with the same name (`[1].exists(request, …)`) lives in an inner
//! scope and so still shadows. Names that are not per-request variables (`data`, the
//! arguments compiled at load) are left to the scopes that bind them.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::SystemTime;

use cel::Context;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;

use super::environment::{Build, CelVal, HeadersRead, Inputs, Shape, VARIABLES, Variable};
use super::{CelEnv, values};
use crate::request::AuthzRequest;
use crate::trust::Identities;

/// One slot per variable (its whole value) and one per field of a variable with fixed
/// fields, in the order of [`VARIABLES`].
const SLOTS: usize = slot_offset(VARIABLES.len());

/// The slot of the `variable`-th variable's whole value; its fields' slots follow it.
const fn slot_offset(variable: usize) -> usize {
    let mut offset = 0;
    let mut index = 0;
    while index < variable {
        offset += 1 + match VARIABLES[index].shape {
            Shape::Fields(fields) => fields.len(),
            Shape::Value { .. } | Shape::Loaded { .. } => 0,
        };
        index += 1;
    }
    offset
}

/// [`slot_offset`] of every variable.
const OFFSETS: [usize; VARIABLES.len()] = {
    let mut offsets = [0; VARIABLES.len()];
    let mut index = 0;
    while index < VARIABLES.len() {
        offsets[index] = slot_offset(index);
        index += 1;
    }
    offsets
};

/// The per-request variables of one request, each built when first read.
pub(crate) struct RequestVariables<'a> {
    inputs: Inputs<'a>,
    values: [OnceLock<CelVal<'a>>; SLOTS],
}

impl<'a> RequestVariables<'a> {
    /// The variables of `request` from the caller `identities` established, evaluated at
    /// `now`, for rules that observe `headers_read`; nothing is built yet.
    pub(crate) fn new(
        identities: &'a Identities,
        request: &'a AuthzRequest,
        now: SystemTime,
        headers_read: &'a HeadersRead,
    ) -> Self {
        Self {
            inputs: Inputs {
                peer: &identities.transport,
                provenance: &identities.provenance,
                workload: &identities.workload,
                request,
                now,
                headers_read,
            },
            values: [const { OnceLock::new() }; SLOTS],
        }
    }

    /// The value of `name`: a variable (`request`) or a field of one with fixed fields
    /// (`request.path`). `None` for any other name, and for `data`, which the policy binds
    /// once when it loads.
    fn value(&self, name: &str) -> Option<&(dyn Val + 'a)> {
        let slot = match name.split_once('.') {
            Some((variable, field)) => Slot::field(variable, field)?,
            None => Slot::variable(name)?,
        };
        self.get(slot)
    }

    /// The value at `at`, built when first read: what `request.path` (or `context`) resolves
    /// to in this request's scope.
    pub(super) fn get(&self, at: Slot) -> Option<&(dyn Val + 'a)> {
        let cell = self.values.get(at.slot)?;
        if let Some(value) = cell.get() {
            return Some(value.as_ref());
        }
        let variable = VARIABLES.get(at.variable)?;
        let value = match (at.field, &variable.shape) {
            (None, _) => variable.build(&self.inputs)?,
            (Some(field), Shape::Fields(fields)) => fields.get(field)?.build.value(&self.inputs),
            (Some(_), _) => return None,
        };
        Some(cell.get_or_init(|| value).as_ref())
    }
}

/// Reads a string field straight from the request ([`Build::Text`]).
pub(super) type TextOf = for<'a> fn(&Inputs<'a>) -> &'a str;

impl<'a> RequestVariables<'a> {
    /// The string field `text` reads, straight from the request.
    pub(super) fn text(&self, text: TextOf) -> &'a str {
        text(&self.inputs)
    }

    /// `request.headers[name]`, without building the map.
    pub(super) fn header(&self, name: &str) -> Option<&'a str> {
        values::header(&self.inputs, name)
    }

    /// `context[key]`, without building the map.
    pub(super) fn context(&self, key: &str) -> Option<&'a str> {
        values::context_extension(&self.inputs, key)
    }

    /// `request.query[key]`, without building the map.
    pub(super) fn query(&self, key: &str) -> Option<Cow<'a, str>> {
        values::query_parameter(&self.inputs, key)
    }
}

/// Where one per-request value — a variable (`context`) or a field of one with fixed fields
/// (`request.path`) — is kept in a request's [`RequestVariables`]: found by name once, at
/// load, and read by position per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The position of the variable in [`VARIABLES`].
    variable: usize,
    /// The position of the field among the variable's fields; `None` for the whole variable.
    field: Option<usize>,
    /// The slot of its value.
    slot: usize,
}

impl Slot {
    /// The per-request variable `name` (not `data`, which the policy binds when it loads).
    pub(super) fn variable(name: &str) -> Option<Self> {
        let (index, variable) = find_variable(name)?;
        if matches!(variable.shape, Shape::Loaded { .. }) {
            return None;
        }
        Some(Self {
            variable: index,
            field: None,
            slot: *OFFSETS.get(index)?,
        })
    }

    /// How its value is read as text, when it is a string field borrowed from the request.
    pub(super) fn text(self) -> Option<TextOf> {
        let variable = VARIABLES.get(self.variable)?;
        match (&variable.shape, self.field) {
            (Shape::Fields(fields), Some(field)) => match fields.get(field)?.build {
                Build::Text(text) => Some(text),
                Build::Value(_) => None,
            },
            _ => None,
        }
    }

    /// The field `field` of the per-request variable `variable`; `None` when there is no such
    /// variable, or it has no fixed fields, or not that one.
    pub(super) fn field(variable: &str, field: &str) -> Option<Self> {
        let (index, found) = find_variable(variable)?;
        let Shape::Fields(fields) = found.shape else {
            return None;
        };
        let position = fields.iter().position(|f| f.name == field)?;
        Some(Self {
            variable: index,
            field: Some(position),
            slot: *OFFSETS.get(index)? + 1 + position,
        })
    }
}

/// The per-request variable `name` and its position in [`VARIABLES`].
fn find_variable(name: &str) -> Option<(usize, &'static Variable)> {
    VARIABLES.iter().enumerate().find(|(_, v)| v.name == name)
}

impl VariableResolver for RequestVariables<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.value(variable).map(CowVal::Borrowed)
    }
}

impl fmt::Debug for RequestVariables<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built: Vec<usize> = (0..SLOTS)
            .filter(|slot| self.values[*slot].get().is_some())
            .collect();
        f.debug_struct("RequestVariables")
            .field("built_slots", &built)
            .finish_non_exhaustive()
    }
}

/// The scope one request's rules are evaluated in: a child of the policy's root scope whose
/// variables resolve through [`RequestVariables`], which the rules' shortcuts also read.
pub(crate) struct Activation<'b, 'a> {
    pub(super) scope: Context<'b, 'b>,
    /// The request's variables; `None` only in tests that evaluate without a request.
    pub(super) variables: Option<&'b RequestVariables<'a>>,
}

impl fmt::Debug for Activation<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activation").finish_non_exhaustive()
    }
}

impl CelEnv {
    /// The scope to evaluate one request's rules in, reading `variables`.
    pub(crate) fn activation<'b, 'a: 'b>(
        &'b self,
        variables: &'b RequestVariables<'a>,
    ) -> Activation<'b, 'a> {
        let root: &'b Context<'b, 'b> = &self.root;
        let mut scope = root.new_inner_scope();
        scope.set_variable_resolver(variables);
        Activation {
            scope,
            variables: Some(variables),
        }
    }
}
