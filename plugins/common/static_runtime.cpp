// SPDX-License-Identifier: MIT
// For a plugin with its own static C++ runtime: frees at unload what that runtime allocated at load.
//
// libstdc++ allocates its emergency exception pool (about 70 KiB) when it
// is loaded and frees it only when asked to, through __gnu_cxx::__freeres
// (valgrind calls it at exit).  Linked into a plugin (static_runtime in
// meson.build), the runtime's data goes away at dlclose with the pool still
// allocated: a leak for each load of the plugin.
#ifdef VMRD_STATIC_CXX_RUNTIME
namespace __gnu_cxx { // NOLINT(bugprone-reserved-identifier): libstdc++'s own
void __freeres();     // NOLINT(bugprone-reserved-identifier): defined in eh_alloc.cc
} // namespace __gnu_cxx

namespace {
__attribute__((destructor)) void freeCxxRuntime()
{
	__gnu_cxx::__freeres();
}
} // namespace
#endif
