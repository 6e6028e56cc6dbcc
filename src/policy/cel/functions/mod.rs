//! Warrant's own CEL functions and the load-time work on their arguments.
//!
//! - `matches`: RE2 syntax, every literal pattern compiled once at load ([`matches`]).
//! - Timestamp accessors answer in UTC without a time-zone argument ([`time`]).

pub mod matches;
pub mod time;

use cel::common::value::CowVal;
use cel::{ExecutionError, FunctionContext};

/// A function as the engine calls it: resolved arguments, borrowed where they can be.
pub type NativeFunction = Box<
    dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError>
        + Send
        + Sync,
>;
