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
use super::lexer::{self, Malformed};

/// The deepest an expression may nest: operators, calls, field selections, indexes, list and
/// map literals and macros, each applied to another (`a + b + c` nests 2 levels, `f(g(x))` 2).
pub const MAX_DEPTH: usize = 64;

/// Text longer than this that the scan cannot read (it does not lex) is refused without
/// parsing; shorter text goes to the parser for its own error message. Parsing costs at most
/// ~1.6 KiB of stack per byte of a chain in a debug build, plus ~16 MiB for the 96 nested
/// groups the engine allows itself: 16 KiB of text stays well within `PARSE_STACK`.
const UNSCANNED_PARSE_LIMIT: usize = 16 << 10;

/// The nesting of one operand: the text between separators (`,`, `&&`, `||`, `?`, `:`).
#[derive(Debug, Default, Clone, Copy)]
struct Operand {
    /// Chain operators (each a level over the previous part of the operand).
    chain: usize,
    /// The deepest group nested in the operand.
    child: usize,
}

impl Operand {
    fn depth(self) -> usize {
        self.chain.saturating_add(self.child)
    }
}

/// One element of a group: what lies between its commas (a list element, a call argument, a
/// map entry), or the whole expression.
#[derive(Debug, Default)]
struct Element {
    /// `? :` in this element: each nests its `:` branch one level deeper.
    ternaries: usize,
    ands: usize,
    ors: usize,
    operand: Operand,
    /// The deepest operand already closed by a separator.
    deepest: usize,
}

impl Element {
    fn close_operand(&mut self) {
        self.deepest = self.deepest.max(self.operand.depth());
        self.operand = Operand::default();
    }

    /// An upper bound on the element's nesting.
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

/// What the scan of one bracketed group (or the whole expression) has seen so far.
#[derive(Debug, Default)]
struct Group {
    /// 1 when the group is a node of the tree (a list, a map, a global call), 0 when its
    /// node is already counted (a method call's `.`, an index's `[`) or it has none (plain
    /// parentheses).
    level: usize,
    element: Element,
    /// The deepest element already closed by a comma.
    deepest: usize,
}

impl Group {
    fn depth(self) -> usize {
        self.deepest.max(self.element.depth())
    }
}

/// Rejects `source` when an upper bound on its nesting exceeds [`MAX_DEPTH`], scanning its
/// tokens once without recursion. Text that does not lex is left for the parser to report
/// when it is short enough to parse safely, and refused otherwise.
pub(super) fn check_source(source: &str) -> Result<(), CompileError> {
    match estimate(source) {
        Ok(depth) if depth > MAX_DEPTH => Err(CompileError::NestedTooDeeply {
            depth,
            estimated: true,
        }),
        Ok(_) => Ok(()),
        Err(_) if source.len() <= UNSCANNED_PARSE_LIMIT => Ok(()),
        Err(malformed) => {
            let before = &source.as_bytes()[..malformed.offset.min(source.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            Err(CompileError::Syntax(format!(
                "{} at {line}:{column}",
                malformed.what
            )))
        }
    }
}

/// An upper bound on how deeply the parser will nest `source`, read with CEL's lexical
/// grammar ([`lexer`]); an error for text the engine's lexer refuses, whose tokens the engine
/// would read differently.
pub(super) fn estimate(source: &str) -> Result<usize, Malformed> {
    let bytes = source.as_bytes();
    let mut groups: Vec<Group> = vec![Group::default()];
    // Whether the previous token ended an operand (identifier, literal, closing bracket): it
    // tells a binary `-` from a unary one, an index `[` from a list, a call `(` from a plain
    // one, and a ternary `?` from the optional syntax (`a.?b`, `a[?b]`, `{?k: v}`).
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
        let element = &mut group.element;
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
                i = lexer::string_end(bytes, i, false)?;
                operand = true;
            }
            b'`' => {
                i = lexer::escaped_identifier_end(bytes, i)?;
                operand = true;
            }
            b'0'..=b'9' => {
                i = lexer::number_end(bytes, i);
                operand = true;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &bytes[start..i];
                let raw = if matches!(bytes.get(i), Some(b'"' | b'\'')) {
                    lexer::string_prefix(word)
                } else {
                    None
                };
                if let Some(raw) = raw {
                    i = lexer::string_end(bytes, i, raw)?;
                    operand = true;
                } else if word == b"in" && after_operand {
                    element.operand.chain = element.operand.chain.saturating_add(1);
                } else {
                    operand = true;
                    method_name = previous == b'.';
                }
            }
            b'(' | b'[' | b'{' => {
                let level = match byte {
                    b'(' => usize::from(after_operand && !after_method_name),
                    b'[' if after_operand => {
                        element.operand.chain = element.operand.chain.saturating_add(1);
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
                    let child = &mut parent.element.operand.child;
                    *child = (*child).max(closed.depth().saturating_add(level));
                }
                operand = true;
                i += 1;
            }
            b'&' | b'|' if bytes.get(i + 1) == Some(&byte) => {
                element.close_operand();
                if byte == b'&' {
                    element.ands += 1;
                } else {
                    element.ors += 1;
                }
                i += 2;
            }
            b',' => {
                let closed = std::mem::take(&mut group.element);
                group.deepest = group.deepest.max(closed.depth());
                i += 1;
            }
            b':' => {
                element.close_operand();
                i += 1;
            }
            b'?' => {
                if !matches!(previous, b'.' | b'[' | b'{' | b',') {
                    element.close_operand();
                    element.ternaries += 1;
                }
                i += 1;
            }
            // Operators, each a level of its chain: `.`, arithmetic, comparisons, unary `!`
            // and `-` (counted even where the parser folds them: an upper bound). Bytes the
            // lexer refuses count too, which only overestimates.
            _ => {
                element.operand.chain = element.operand.chain.saturating_add(1);
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
                let child = &mut parent.element.operand.child;
                *child = (*child).max(inner.saturating_add(level));
                0
            }
            None => inner,
        };
    }
    Ok(depth.max(deepest_group))
}

/// Rejects a parsed expression deeper than [`MAX_DEPTH`], macros expanded. Recurses, so call
/// it only on a tree that passed [`check_source`] (whose depth that bounds), on a large stack.
pub(super) fn check_tree(expr: &IdedExpr) -> Result<(), CompileError> {
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
pub(super) fn depth(expr: &IdedExpr) -> usize {
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

    fn bound(source: &str) -> usize {
        estimate(source).unwrap_or_else(|e| panic!("{source}: {e:?}"))
    }

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
            ("((((a))))", 4),
            ("1 == 0xe+0xe+0xe", 3),
        ] {
            assert!(bound(source) >= at_least, "{source}: {}", bound(source));
        }
    }

    #[test]
    fn flat_chains_and_literals_stay_shallow() {
        let or_chain = vec!["x == 'a'"; 10_000].join(" || ");
        assert!(bound(&or_chain) <= 16, "{}", bound(&or_chain));
        let list = format!(
            "x in [{}]",
            vec!["'spiffe://td/ns/a/sa/b'"; 10_000].join(", ")
        );
        assert!(bound(&list) <= 3);
        let map = format!("{{{}}}", vec!["'k': 1"; 1000].join(", "));
        assert!(bound(&map) <= 2);
        // Ternaries in separate elements do not add up.
        let ternaries = format!("x in [{}]", vec!["c ? 'GET' : 'HEAD'"; 100].join(", "));
        assert!(bound(&ternaries) <= 4, "{}", bound(&ternaries));
    }

    #[test]
    fn strings_comments_and_numbers_do_not_count() {
        assert_eq!(bound(r#"a == "((((+.+.+" "#), 1);
        assert_eq!(bound(r#"a == r"\" + b"#), 2);
        assert_eq!(bound(r#"a == '''+'+''' "#.replace("\\'", "'").as_str()), 1);
        assert_eq!(bound("a == 1.5e-3 // + + + +\n"), 1);
        assert_eq!(bound("a == b'\\x01+'"), 1);
        assert_eq!(bound("a.?b"), 1);
    }

    #[test]
    fn text_the_engine_cannot_lex_is_not_skipped() {
        for source in [
            r#""\q" + a"#,
            "\"a\n\" + b",
            "r'a\n' + b",
            "`a+b` + c",
            "\"open + a",
        ] {
            assert!(estimate(source).is_err(), "{source}");
        }
        // Short: the parser reports it. Long: refused without parsing, with the place.
        assert!(check_source(r#""\q" + a"#).is_ok());
        let long = format!("x == 1 &&\n \"\\q\" {}", "+ a ".repeat(50_000));
        let error = check_source(&long).expect_err("refused").to_string();
        assert_eq!(
            error,
            "CEL syntax error: invalid escape sequence in a string at 2:2"
        );
    }

    #[test]
    fn unbalanced_input_is_left_to_the_parser() {
        assert!(bound("((((a") >= 4);
        assert_eq!(bound(")))a"), 0);
    }
}
