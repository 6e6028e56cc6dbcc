//! How deeply an expression may nest, enforced before and after the engine parses it.
//!
//! The engine's parser, its tree walker and its evaluator all recurse once per level of
//! nesting, so an expression nested deeply enough overflows the stack and aborts the whole
//! process (Rust cannot catch a stack overflow). Measured on `cel` 0.15 (`x86_64`):
//!
//! | per level of nesting | debug build | release build |
//! |---|---|---|
//! | parsing a parenthesis, list or call | ~160 KiB | ~8 KiB |
//! | parsing a binary operator or `.field` in a chain | ~1.6 KiB | ~0.4 KiB |
//! | evaluating any level | ~40 KiB | ~2 KiB |
//!
//! A left-nested chain such as a generated `x in [..] + [..] + …` of 1,500 terms nests 1,500
//! levels, so an expression that parses on the 8 MiB main thread (`warrant check`) could
//! abort `warrant serve` on the first Check, on a 2 MiB runtime worker.
//!
//! Hence two checks, both against [`MAX_DEPTH`]:
//! 1. [`check_source`]: before the engine sees the text, a linear scan of its tokens bounds the
//!    nesting from above, without recursing, so no input of any length reaches the parser
//!    deep enough to hurt it. `&&` and `||` chains do not nest (the parser balances them), nor
//!    do list elements, call arguments or map entries: those stay unlimited.
//! 2. [`check_tree`]: after parsing, the exact depth of the syntax tree, macros expanded (an
//!    `all()` or `map()` adds up to four levels), which bounds the evaluator's recursion.
//!
//! With depth at most 64, evaluation needs ~2.6 MiB of stack in a debug build and ~130 KiB in
//! a release build; parsing stays under ~12 MiB and ~600 KiB. `super::PARSE_STACK` and
//! `super::EVAL_STACK` are sized from these figures.

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr};

use super::CompileError;

/// The deepest an expression may nest: operators, calls, field selections, indexes, list and
/// map literals and macros, each applied to another (`a + b + c` nests 2 levels, `f(g(x))` 2).
pub const MAX_DEPTH: usize = 64;

/// What the scan of one bracketed group (or the whole expression) has seen so far.
#[derive(Debug, Default)]
struct Group {
    /// 1 when the group is a node of the tree (a list, a map, a global call), 0 when its
    /// node is already counted (a method call's `.`, an index's `[`) or it has none (plain
    /// parentheses).
    level: usize,
    /// `? :` in this group: each nests its `:` branch one level deeper.
    ternaries: usize,
    ands: usize,
    ors: usize,
    /// Chain operators in the current operand (between separators).
    chain: usize,
    /// The deepest group nested in the current operand.
    child: usize,
    /// The deepest operand already closed by a separator.
    deepest: usize,
}

impl Group {
    fn close_operand(&mut self) {
        self.deepest = self.deepest.max(self.chain.saturating_add(self.child));
        self.chain = 0;
        self.child = 0;
    }

    /// An upper bound on the nesting of this group's contents.
    fn depth(mut self) -> usize {
        self.close_operand();
        // `&&` and `||` chains are balanced binary trees.
        let balanced = |n: usize| (usize::BITS - n.leading_zeros()) as usize;
        self.deepest
            .saturating_add(self.ternaries)
            .saturating_add(balanced(self.ands))
            .saturating_add(balanced(self.ors))
    }
}

/// Rejects `source` when an upper bound on its nesting exceeds [`MAX_DEPTH`], scanning its
/// tokens once without recursion. Malformed text is left for the parser to report.
pub fn check_source(source: &str) -> Result<(), CompileError> {
    let depth = estimate(source);
    if depth > MAX_DEPTH {
        return Err(CompileError::NestedTooDeeply {
            depth,
            estimated: true,
        });
    }
    Ok(())
}

/// An upper bound on how deeply the parser will nest `source` (CEL.g4's lexical grammar:
/// comments, quoted, raw, triple-quoted and byte strings, backquoted identifiers).
pub fn estimate(source: &str) -> usize {
    let bytes = source.as_bytes();
    let mut groups: Vec<Group> = vec![Group::default()];
    // Whether the previous token ended an operand (identifier, literal, closing bracket): it
    // tells a binary `-` from a unary one, an index `[` from a list, and a ternary `?` from the
    // optional syntax (`a.?b`, `a[?b]`, `{?k: v}`).
    let mut after_operand = false;
    // Whether the previous token was an identifier written after a `.` (a method name).
    let mut after_method_name = false;
    let mut previous = b' ';
    // Groups nest the parser's recursion even where they add no level to the tree (plain
    // parentheses), so their nesting is bounded too.
    let mut deepest_group = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let Some(group) = groups.last_mut() else {
            break;
        };
        let mut operand = false;
        let mut method_name = false;
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |end| i + end);
                continue;
            }
            b'"' | b'\'' => {
                i = skip_string(bytes, i, false);
                operand = true;
            }
            b'`' => {
                i = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == b'`')
                    .map_or(bytes.len(), |end| i + end + 2);
                operand = true;
            }
            b'0'..=b'9' => {
                i = skip_number(bytes, i);
                operand = true;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &bytes[start..i];
                if matches!(bytes.get(i), Some(b'"' | b'\'')) && is_string_prefix(word) {
                    let raw = word.iter().any(|b| b.eq_ignore_ascii_case(&b'r'));
                    i = skip_string(bytes, i, raw);
                    operand = true;
                } else if word == b"in" && after_operand {
                    group.chain = group.chain.saturating_add(1);
                } else {
                    operand = true;
                    method_name = previous == b'.';
                }
            }
            b'(' | b'[' | b'{' => {
                let level = match byte {
                    b'(' => usize::from(after_operand && !after_method_name),
                    b'[' if after_operand => {
                        group.chain = group.chain.saturating_add(1);
                        0
                    }
                    _ => 1,
                };
                groups.push(Group {
                    level,
                    ..Group::default()
                });
                deepest_group = deepest_group.max(groups.len() - 1);
                i += 1;
            }
            b')' | b']' | b'}' => {
                if groups.len() > 1
                    && let Some(closed) = groups.pop()
                    && let Some(parent) = groups.last_mut()
                {
                    let level = closed.level;
                    parent.child = parent.child.max(closed.depth().saturating_add(level));
                }
                operand = true;
                i += 1;
            }
            b'&' | b'|' if bytes.get(i + 1) == Some(&byte) => {
                group.close_operand();
                if byte == b'&' {
                    group.ands += 1;
                } else {
                    group.ors += 1;
                }
                i += 2;
            }
            b',' | b':' => {
                group.close_operand();
                i += 1;
            }
            b'?' => {
                if !matches!(previous, b'.' | b'[' | b'{' | b',') {
                    group.close_operand();
                    group.ternaries += 1;
                }
                i += 1;
            }
            // Operators, each a level of its chain: `.`, arithmetic, comparisons, unary `!`
            // and `-` (counted even where the parser folds them: an upper bound).
            _ => {
                group.chain = group.chain.saturating_add(1);
                let two = matches!(bytes.get(i + 1), Some(b'='))
                    && matches!(byte, b'=' | b'!' | b'<' | b'>');
                i += if two { 2 } else { 1 };
            }
        }
        previous = byte;
        after_operand = operand;
        after_method_name = method_name;
    }
    // Unclosed groups (a syntax error the parser will report) still count.
    let mut depth = 0;
    while let Some(group) = groups.pop() {
        let level = group.level;
        let inner = group.depth();
        depth = match groups.last_mut() {
            Some(parent) => {
                parent.child = parent.child.max(inner.saturating_add(level));
                0
            }
            None => inner,
        };
    }
    depth.max(deepest_group)
}

/// `r`, `b`, `br` and their capitals: the prefixes of raw and byte strings.
fn is_string_prefix(word: &[u8]) -> bool {
    matches!(word.len(), 1 | 2) && word.iter().all(|b| matches!(b, b'r' | b'R' | b'b' | b'B'))
}

/// The index just past the string literal opening at `start` (`"`, `'`, or tripled).
fn skip_string(bytes: &[u8], start: usize, raw: bool) -> usize {
    let quote = bytes[start];
    let triple = bytes.get(start..start + 3) == Some(&[quote, quote, quote][..]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if !raw => i += 2,
            b if b == quote => {
                if !triple {
                    return i + 1;
                }
                if bytes.get(i..i + 3) == Some(&[quote, quote, quote][..]) {
                    return i + 3;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the number starting at `start`: digits, hex, a fraction, an exponent
/// and a `u` suffix.
fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        let exponent_sign = matches!(b, b'+' | b'-') && matches!(bytes[i - 1], b'e' | b'E');
        let fraction = b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if b.is_ascii_alphanumeric() || fraction || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Rejects a parsed expression deeper than [`MAX_DEPTH`], macros expanded. Recurses, so call
/// it only on a tree that passed [`check_source`] (whose depth that bounds), on a large stack.
pub fn check_tree(expr: &IdedExpr) -> Result<(), CompileError> {
    let depth = depth(expr);
    if depth > MAX_DEPTH {
        return Err(CompileError::NestedTooDeeply {
            depth,
            estimated: false,
        });
    }
    Ok(())
}

/// Levels of nesting below `expr`: 0 for a literal or identifier.
pub fn depth(expr: &IdedExpr) -> usize {
    let deepest = |children: &mut dyn Iterator<Item = &IdedExpr>| {
        children.map(depth).max().map_or(0, |d| d + 1)
    };
    match &expr.expr {
        Expr::Call(call) => deepest(&mut call.target.iter().map(|t| &**t).chain(&call.args)),
        Expr::Select(select) => depth(&select.operand) + 1,
        Expr::List(list) => deepest(&mut list.elements.iter()).max(1),
        Expr::Map(map) => deepest(&mut map.entries.iter().flat_map(entry_parts)).max(1),
        Expr::Struct(structure) => {
            deepest(&mut structure.entries.iter().flat_map(entry_parts)).max(1)
        }
        Expr::Comprehension(comp) => deepest(
            &mut [
                &comp.iter_range,
                &comp.accu_init,
                &comp.loop_cond,
                &comp.loop_step,
                &comp.result,
            ]
            .into_iter(),
        ),
        _ => 0,
    }
}

fn entry_parts(entry: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    match &entry.expr {
        EntryExpr::StructField(field) => vec![&field.value],
        EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_bound_chains_and_groups() {
        for (source, at_least) in [
            ("a", 0),
            ("a + b + c", 2),
            ("a.b.c.d", 3),
            ("f(g(h(x)))", 3),
            ("[[[1]]]", 3),
            ("a[0][1]", 2),
            ("a ? b : c ? d : e", 2),
            ("!!!a", 3),
        ] {
            assert!(
                estimate(source) >= at_least,
                "{source}: {}",
                estimate(source)
            );
        }
    }

    #[test]
    fn flat_chains_and_literals_stay_shallow() {
        let or_chain = vec!["x == 'a'"; 10_000].join(" || ");
        assert!(estimate(&or_chain) <= 16, "{}", estimate(&or_chain));
        let list = format!(
            "x in [{}]",
            vec!["'spiffe://td/ns/a/sa/b'"; 10_000].join(", ")
        );
        assert!(estimate(&list) <= 3);
        let map = format!("{{{}}}", vec!["'k': 1"; 1000].join(", "));
        assert!(estimate(&map) <= 2);
    }

    #[test]
    fn strings_comments_and_numbers_do_not_count() {
        assert_eq!(estimate(r#"a == "((((+.+.+" "#), 1);
        assert_eq!(estimate(r#"a == r"\" + b"#), 2);
        assert_eq!(estimate(r#"a == '''+'+''' "#), 1);
        assert_eq!(estimate("a == 1.5e-3 // + + + +\n"), 1);
        assert_eq!(estimate("a == b'\\x01+'"), 1);
        assert_eq!(estimate("a.?b"), 1);
    }

    #[test]
    fn unbalanced_input_is_left_to_the_parser() {
        assert!(estimate("((((a") >= 4);
        assert_eq!(estimate(")))a"), 0);
        assert!(estimate("\"unterminated + + +") <= 1);
    }
}
