use super::FUNCTIONS;

const DOCS: &str = include_str!("../../../../docs/cel.md");

/// The docs row of a function: `| `sig`, `sig` | returns | doc |`.
fn row(function: &super::Function) -> String {
    let signatures: Vec<String> = function
        .signatures
        .iter()
        .map(|s| format!("`{s}`"))
        .collect();
    format!(
        "| {} | {} | {} |",
        signatures.join(", "),
        function.returns,
        function.doc
    )
}

#[test]
fn docs_cel_md_and_the_function_table_agree() {
    for function in FUNCTIONS {
        if function.name.starts_with('@') {
            assert!(function.signatures.is_empty() && function.doc.is_empty());
            continue;
        }
        let row = row(function);
        assert!(DOCS.contains(&row), "docs/cel.md must have the row\n{row}");
        for signature in function.signatures {
            let name = signature
                .split('(')
                .next()
                .and_then(|s| s.rsplit('.').next());
            assert_eq!(name, Some(function.name), "{signature}");
        }
    }
    // Every row of the docs' function table is a declared function.
    let section = DOCS
        .split("## Warrant's functions")
        .nth(1)
        .and_then(|s| s.split("\n#").next())
        .expect("docs/cel.md has a section \"## Warrant's functions\"");
    let documented = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect::<Vec<_>>();
    let declared: Vec<String> = FUNCTIONS
        .iter()
        .filter(|f| !f.name.starts_with('@'))
        .map(row)
        .collect();
    for line in documented {
        assert!(
            declared.iter().any(|r| r == line),
            "docs/cel.md documents a function the table does not declare:\n{line}"
        );
    }
}
