"""cc_grpc_proto: C++ (and gRPC) code generation with the system protoc.

Protos are compiled with `proto/` as the import root, so C++ includes read
"conductor/v1/table_ops.grpc.pb.h" and proto imports read "conductor/v1/value.proto".
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def cc_grpc_proto(name, srcs, deps = [], proto_deps = [], grpc = True, import_root = "proto"):
    """Generates and compiles C++ code for `srcs`.

    Args:
      name: the cc_library name.
      srcs: .proto files in this package.
      deps: cc_grpc_proto targets whose generated code this code uses.
      proto_deps: .proto files (labels) that srcs import.
      grpc: also generate gRPC service stubs.
      import_root: the directory that proto import paths are relative to.
    """
    pkg = native.package_name()
    sub = pkg[len(import_root) + 1:] if pkg.startswith(import_root + "/") else ""
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    if not sub:
        fail("cc_grpc_proto must be used in a package below %s/" % import_root)
    gendir = "$(GENDIR)/" + import_root
    cmd = " ".join([
        "$(location @system//:protoc)",
        "-I" + import_root,
        "-I/usr/include",
        "--cpp_out=" + gendir,
    ] + ([
        "--plugin=protoc-gen-grpc=$(location @system//:grpc_cpp_plugin)",
        "--grpc_out=" + gendir,
    ] if grpc else []) + ["$(location %s)" % s for s in srcs])
    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = cmd,
        tools = ["@system//:protoc", "@system//:grpc_cpp_plugin"],
    )
    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        strip_include_prefix = "/" + import_root,
        deps = deps + ["@system//:grpc"],
        visibility = ["//visibility:public"],
    )
