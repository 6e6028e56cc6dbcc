//! Reads policy files and the bundles they name from disk, then hands them to the pure
//! [`Policy::compile`].

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::policy::{ExternalBundles, FileKind, Policy, PolicyError, PolicyErrors, PolicySource};

/// Largest policy file read, in bytes (a 20,000-entry allowlist is about 1 MiB).
pub const MAX_POLICY_FILE: u64 = 32 << 20;
/// Largest bundle file read, in bytes.
pub const MAX_BUNDLE_FILE: u64 = 4 << 20;
/// Largest data file read, in bytes (a 100,000-entry allowlist of SPIFFE IDs is about 6 MiB).
pub const MAX_DATA_FILE: u64 = 32 << 20;

/// Reads at most `limit` bytes of `path`: a path such as `/dev/zero` or a runaway file fails
/// instead of exhausting memory.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            limit >> 20
        )));
    }
    Ok(bytes)
}

/// Whether `name` is a policy test file (`warrant test`), which a policy directory may hold
/// next to the policy.
fn is_test_file(name: &str) -> bool {
    name.ends_with("_test.yaml") || name.ends_with("_test.yml")
}

/// Loads a policy from files and directories. A directory contributes its `*.yaml` and
/// `*.yml` files in lexical order, except test files (`*_test.yaml`) (and [`Policy::compile`]
/// skips the ones its documents name as data files); all paths together form
/// one policy.
pub fn load_policy(paths: &[PathBuf]) -> Result<(Policy, usize), PolicyErrors> {
    load_policy_with(paths, &ExternalBundles::default())
}

/// [`load_policy`] with the bundles a `trust.bundles_from` source delivered.
pub fn load_policy_with(
    paths: &[PathBuf],
    external: &ExternalBundles,
) -> Result<(Policy, usize), PolicyErrors> {
    let files = policy_files(paths)?;
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for path in files {
        let text = read_bounded(&path, MAX_POLICY_FILE).and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
        });
        match text {
            Ok(text) => sources.push(PolicySource { path, text }),
            Err(e) => errors.push(file_error(&path, format!("cannot read policy file: {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    let count = sources.len();
    let policy = Policy::compile_with(
        &sources,
        &mut |path: &Path, kind| {
            let limit = match kind {
                FileKind::Bundle | FileKind::Revocation => MAX_BUNDLE_FILE,
                FileKind::Data => MAX_DATA_FILE,
            };
            read_bounded(path, limit)
        },
        external,
    )?;
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
                            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                            p.is_file()
                                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                                && !is_test_file(name)
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
