//! Reads policy files and the bundles they name from disk, then hands them to the pure
//! [`Policy::compile`].

use std::path::{Path, PathBuf};

use crate::policy::{Policy, PolicyError, PolicyErrors, PolicySource};

/// Loads a policy from files and directories. A directory contributes its `*.yaml` and
/// `*.yml` files in lexical order; all paths together form one policy.
pub fn load_policy(paths: &[PathBuf]) -> Result<(Policy, usize), PolicyErrors> {
    let files = policy_files(paths)?;
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(PolicySource { path, text }),
            Err(e) => errors.push(file_error(&path, format!("cannot read policy file: {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    let count = sources.len();
    let policy = Policy::compile(&sources, &mut |path: &Path| std::fs::read(path))?;
    Ok((policy, count))
}

fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(Result::ok)
                        .map(|entry| entry.path())
                        .filter(|p| {
                            p.is_file()
                                && p.extension()
                                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
                        })
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        errors.push(file_error(
                            path,
                            "directory holds no *.yaml policy files".into(),
                        ));
                    }
                    files.extend(found);
                }
                Err(e) => errors.push(file_error(path, format!("cannot list directory: {e}"))),
            },
            Ok(_) => files.push(path.clone()),
            Err(e) => errors.push(file_error(path, format!("cannot read policy path: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(PolicyErrors(errors))
    }
}

fn file_error(path: &Path, message: String) -> PolicyError {
    PolicyError {
        file: path.to_path_buf(),
        line: None,
        rule: None,
        message,
    }
}
