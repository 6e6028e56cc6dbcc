//! Evaluation errors as text that is safe to record: types and functions, never values.

use std::collections::BTreeSet;

use cel::{ExecutionError, Value};

/// An engine error as text that names the types involved but never the values: the engine's
/// own messages print operands with `{:?}`, and an operand may be a request header such as
/// `authorization` (`request.headers.authorization > 5` would put the token in the reason, the
/// decision log and the span). Variants without operands keep the engine's message; a missing
/// map key is named only when it is written in the expression (`written_keys`), since a key
/// computed from the request (`context.allowed[request.query.token]`) is request data.
pub(super) fn describe(error: &ExecutionError, written_keys: &BTreeSet<String>) -> String {
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
