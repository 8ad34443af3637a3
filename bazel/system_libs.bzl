"""Exposes Debian's system libraries and code generators to Bazel.

Runs pkg-config once per library and writes cc_library targets carrying the
resulting link options. Headers live in /usr/include, which the toolchain
already searches, so no hdrs are declared.
"""

_LIBS = {
    # target name: (pkg-config modules, extra linkopts)
    "grpc": (
        ["grpc++", "protobuf"],
        ["-Wl,--no-as-needed", "-lgrpc++_reflection", "-Wl,--as-needed", "-lpthread"],
    ),
    "protobuf": (["protobuf"], ["-lpthread"]),
    "sqlite3": (["sqlite3"], ["-lpthread", "-ldl"]),
    "gtest": (["gtest"], ["-lpthread"]),
    "gtest_main": (["gtest_main", "gmock"], ["-lpthread"]),
    "gmock": (["gmock"], []),
    "xxhash": (["libxxhash"], []),
    "benchmark": (["benchmark"], ["-lpthread"]),
    "absl": (
        [
            "absl_status",
            "absl_statusor",
            "absl_strings",
            "absl_str_format",
            "absl_synchronization",
            "absl_time",
            "absl_flags",
            "absl_flags_parse",
            "absl_flags_usage",
            "absl_hash",
            "absl_random_random",
        ],
        [],
    ),
}

def _pkg_config(ctx, modules):
    result = ctx.execute(["pkg-config", "--libs"] + modules)
    if result.return_code != 0:
        fail("pkg-config --libs %s failed: %s\nRun ./dev deps to install the Debian packages." %
             (" ".join(modules), result.stderr))
    flags = []
    for flag in result.stdout.strip().split(" "):
        if flag and flag not in flags:
            flags.append(flag)
    return flags

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (modules, extra) in _LIBS.items():
        linkopts = _pkg_config(ctx, modules) + extra
        build.append("cc_library(\n    name = %r,\n    linkopts = %r,\n)\n" % (name, linkopts))

    for tool in ["protoc", "grpc_cpp_plugin", "grpc_python_plugin"]:
        path = ctx.which(tool)
        if path == None:
            fail("%s not found on PATH; run ./dev deps" % tool)
        ctx.symlink(path, tool)
    build.append('exports_files(["protoc", "grpc_cpp_plugin", "grpc_python_plugin"])')

    # google/rpc/{status,error_details}.proto ship in no C++ package; Debian's
    # golang-github-gogo-googleapis-dev has clean copies.
    googleapis = ctx.path("/usr/share/gocode/src/github.com/gogo/googleapis/google/rpc")
    if not googleapis.exists:
        fail("google/rpc protos not found; run ./dev deps")
    for f in ["status.proto", "error_details.proto"]:
        ctx.symlink(str(googleapis) + "/" + f, "googleapis/google/rpc/" + f)
    build.append('filegroup(name = "google_rpc_protos", srcs = glob(["googleapis/google/rpc/*.proto"]))')
    # grpc.health.v1, so that reflection can describe the health service.
    health = ctx.path("/usr/share/grpc-proto/grpc/health/v1/health.proto")
    if not health.exists:
        fail("grpc/health/v1/health.proto not found; run ./dev deps")
    ctx.symlink(health, "grpcproto/grpc/health/v1/health.proto")
    build.append('exports_files(["grpcproto/grpc/health/v1/health.proto"])')
    ctx.file("BUILD.bazel", "\n".join(build) + "\n")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    environ = ["PATH"],
)
