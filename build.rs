//! Compiles Envoy's ext_authz protos (vendored in `proto/`) into a descriptor set, from which
//! the CLI reads CheckRequests in protobuf's canonical JSON mapping.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["envoy/service/auth/v3/external_auth.proto"], ["proto"])
        .map_err(|error| format!("compiling proto/: {error}"))?;
    let out = std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR for build scripts")?;
    let bytes = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(
        std::path::Path::new(&out).join("ext_authz_descriptors.binpb"),
        bytes,
    )
    .map_err(|error| format!("writing the descriptor set: {error}"))?;
    Ok(())
}
