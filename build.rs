//! Compiles Envoy's ext_authz protos (vendored in `proto/`) into a descriptor set, from which
//! the CLI reads CheckRequests in protobuf's canonical JSON mapping.

fn main() {
    println!("cargo:rerun-if-changed=proto");
    let descriptors =
        match protox::compile(["envoy/service/auth/v3/external_auth.proto"], ["proto"]) {
            Ok(descriptors) => descriptors,
            Err(error) => panic!("compiling proto/: {error}"),
        };
    let out = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from);
    let Some(out) = out else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let bytes = prost::Message::encode_to_vec(&descriptors);
    if let Err(error) = std::fs::write(out.join("ext_authz_descriptors.binpb"), bytes) {
        panic!("writing the descriptor set: {error}");
    }
}
