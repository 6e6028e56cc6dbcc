//! Warrant's own CEL functions, each declared once in [`FUNCTIONS`] — name, signatures, docs
//! line, arity, which arguments are compiled at load — and the one mechanism that compiles
//! those arguments ([`compiled`]): a regular expression, glob, CIDR list, time zone, window
//! list or business-hours spec known when the policy loads (a literal, or a value from
//! `data`) is compiled once then, an invalid one fails the load, and only a value computed
//! per request is compiled per call.
//!
//! - `matches`: RE2 syntax ([`matches`]);
//! - `glob`: path and SPIFFE ID patterns ([`glob`]);
//! - `in_cidr`: IPv4 and IPv6 ranges ([`cidr`]);
//! - `longest_prefix`: the value of a map's longest matching key ([`prefix`]);
//! - `within` and `business_hours`: time windows ([`windows`]);
//! - timestamp accessors answer in UTC without a time zone, and a literal zone is compiled at
//!   load ([`time`]).

pub(super) mod cidr;
pub(super) mod compiled;
pub(super) mod glob;
pub(super) mod matches;
pub(super) mod prefix;
pub(super) mod time;
pub(super) mod windows;

use cel::common::value::{CowVal, Val};
use cel::{ExecutionError, FunctionContext};

pub(super) use compiled::{CompiledArgument, compile_arguments};

/// A function as the engine calls it: resolved arguments, borrowed where they can be.
pub(super) type NativeFunction = Box<
    dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError>
        + Send
        + Sync,
>;

/// One of Warrant's functions.
#[derive(Debug)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "`returns` and `doc` are the docs' source, checked by a test"
    )
)]
pub(super) struct Function {
    /// The name rules call it by; names starting with `@` are internal (load-time rewrites)
    /// and undocumented.
    pub name: &'static str,
    /// How it is called, as the docs write it (`glob(text, pattern)`, `text.glob(pattern)`).
    pub signatures: &'static [&'static str],
    /// The CEL type of its result.
    pub returns: &'static str,
    /// One line for the docs.
    pub doc: &'static str,
    /// The number of arguments it takes, counting a method's receiver.
    pub arity: usize,
    /// Whether it may be called as a method (`text.glob(p)`) as well as a function.
    pub method: bool,
    /// The arguments compiled at load when their value is known then, by position (counting a
    /// method's receiver as the first).
    pub compiled: &'static [CompiledArgument],
    pub implementation: fn() -> NativeFunction,
}

/// Every function Warrant adds to the engine's.
pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "matches",
        signatures: &["text.matches(pattern)", "matches(text, pattern)"],
        returns: "bool",
        doc: r#"whether the RE2 regular expression `pattern` matches anywhere in `text` (anchor it with `^…$`): `request.path.matches("^/v[0-9]+/")`"#,
        arity: 2,
        method: true,
        compiled: &[CompiledArgument {
            position: 1,
            name: "pattern",
            compile: matches::COMPILE,
        }],
        implementation: matches::function,
    },
    Function {
        name: "glob",
        signatures: &["text.glob(pattern)", "glob(text, pattern)"],
        returns: "bool",
        doc: r#"whether the whole `text` matches `pattern`, where `*` matches within one `/`-separated segment and `**` (a whole segment) any number of segments, none included: `request.path.glob("/payments/**")`, `source.spiffe_id.glob("spiffe://prod.example.org/ns/*/sa/frontend")`"#,
        arity: 2,
        method: true,
        compiled: &[CompiledArgument {
            position: 1,
            name: "pattern",
            compile: glob::COMPILE,
        }],
        implementation: glob::function,
    },
    Function {
        name: "in_cidr",
        signatures: &["in_cidr(address, cidr)"],
        returns: "bool",
        doc: r#"whether the IP `address` (IPv4 or IPv6) lies in `cidr`, one range (`"10.0.0.0/8"`) or a list of them: `in_cidr(source.address, ["10.0.0.0/8", "fd00::/8"])`"#,
        arity: 2,
        method: false,
        compiled: &[CompiledArgument {
            position: 1,
            name: "cidr",
            compile: cidr::COMPILE,
        }],
        implementation: cidr::function,
    },
    Function {
        name: "longest_prefix",
        signatures: &["longest_prefix(text, map)"],
        returns: "dyn",
        doc: r#"the value of the longest key of `map` that `text` starts with, or `null` when none does: `longest_prefix(request.path, data.sensitivity) == "restricted"`"#,
        arity: 2,
        method: false,
        compiled: &[CompiledArgument {
            position: 1,
            name: "map",
            compile: prefix::COMPILE,
        }],
        implementation: prefix::function,
    },
    Function {
        name: "within",
        signatures: &["within(time, windows)"],
        returns: "bool",
        doc: r#"whether timestamp `time` lies in one of `windows`, a list of maps `{"start": …, "end": …}` (RFC 3339 strings or timestamps; start included, end excluded): `within(now, data.freezes)`"#,
        arity: 2,
        method: false,
        compiled: &[CompiledArgument {
            position: 1,
            name: "windows",
            compile: windows::COMPILE_WINDOWS,
        }],
        implementation: windows::within,
    },
    Function {
        name: "business_hours",
        signatures: &["business_hours(time, spec, zone)"],
        returns: "bool",
        doc: r#"whether timestamp `time`, in time zone `zone`, falls in `spec`: one string or a list of strings `DAYS HH:MM-HH:MM`: `business_hours(now, "Mon-Fri 09:00-17:00", "Europe/Berlin")`"#,
        arity: 3,
        method: false,
        compiled: &[
            CompiledArgument {
                position: 1,
                name: "spec",
                compile: windows::COMPILE_SPEC,
            },
            CompiledArgument {
                position: 2,
                name: "zone",
                compile: time::COMPILE_ZONE,
            },
        ],
        implementation: windows::business_hours,
    },
    Function {
        name: time::IN_ZONE,
        signatures: &[],
        returns: "timestamp",
        doc: "",
        arity: 2,
        method: false,
        compiled: &[CompiledArgument {
            position: 1,
            name: "time zone",
            compile: time::COMPILE_ZONE,
        }],
        implementation: time::in_zone_function,
    },
    Function {
        name: compiled::PICK,
        signatures: &[],
        returns: "dyn",
        doc: "",
        arity: 2,
        method: false,
        compiled: &[],
        implementation: compiled::pick_function,
    },
    Function {
        name: time::UTC,
        signatures: &[],
        returns: "timestamp",
        doc: "",
        arity: 1,
        method: false,
        compiled: &[],
        implementation: time::utc_function,
    },
];

/// The function called `name`.
pub(super) fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|function| function.name == name)
}

/// The `N` arguments of a call to function `name`, a method's receiver first, or the error
/// the engine gives for a call it has no overload for (`method`: whether it may be called as
/// one).
pub(super) fn arguments<'f, 'v, const N: usize>(
    ftx: &'f FunctionContext<'_, 'v>,
    name: &str,
    method: bool,
) -> Result<[&'f (dyn Val + 'v); N], ExecutionError> {
    let receiver = ftx.this.as_deref();
    let mut all = receiver.into_iter().chain(ftx.args.iter().map(|a| &**a));
    if receiver.is_some() && !method {
        let types = all.map(|v| v.get_type().name().to_owned()).collect();
        return Err(ExecutionError::no_such_member_overload(name, types));
    }
    let given = usize::from(receiver.is_some()) + ftx.args.len();
    if given != N {
        return Err(ExecutionError::invalid_argument_count(N, given));
    }
    Ok(std::array::from_fn(|_| {
        all.next().unwrap_or(&cel::common::types::CelNull)
    }))
}

/// A CEL type name (`int`, `google.protobuf.Timestamp`, `float` as the engine's `Value`
/// names a double) as a phrase: `an int`, `a timestamp`, `a double`, `bytes`, `null`.
pub(super) fn a(kind: impl std::fmt::Display) -> String {
    match kind.to_string().as_str() {
        "int" => "an int",
        "uint" => "a uint",
        "float" | "double" => "a double",
        "bytes" => "bytes",
        "null" | "null_type" => "null",
        "bool" => "a bool",
        "string" => "a string",
        "list" => "a list",
        "map" => "a map",
        "timestamp" | "google.protobuf.Timestamp" => "a timestamp",
        "duration" | "google.protobuf.Duration" => "a duration",
        "type" => "a type",
        _ => "a value of another type",
    }
    .to_owned()
}

/// `value` (function `function`'s `what`) as `T`, or the error saying what it is instead:
/// `the text is an int, not a string`.
pub(super) fn expect<'b, 'v, T: cel::common::value::FromVal<'b, 'v>>(
    value: &'b (dyn Val + 'v),
    function: &str,
    what: &str,
    expected: &str,
) -> Result<&'b T, ExecutionError> {
    value.downcast_ref::<T>().ok_or_else(|| {
        ExecutionError::function_error(
            function,
            format!(
                "the {what} is {}, not {}",
                a(value.get_type().name()),
                a(expected)
            ),
        )
    })
}

#[cfg(test)]
mod tests;
