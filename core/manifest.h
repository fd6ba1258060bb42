// SPDX-License-Identifier: MIT
// Reads a plugin's manifest from its ELF file without loading it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <vmrd/plugin.h>

#include "result.h"

namespace vmrd {

// Finds the exported `vmrd_plugin_manifest` symbol in an ELF64 little-endian
// shared object held in `image` and returns a copy of its bytes.  Pure and
// bounds-checked: any byte string is safe input.  Errors: -ENOEXEC "not an
// ELF shared object", -ENOENT "no vmrd_plugin_manifest symbol", -EBADMSG for
// a manifest that lies outside the file or has a bad magic.
Result<vmrd_manifest> parseManifest(std::string_view image);

// The names of the symbols that the shared object in `image` exports
// (defined, not local, in .dynsym).  Pure and bounds-checked, as above.
Result<std::vector<std::string>> exportedSymbols(std::string_view image);

// Map the file (at most 64 MiB) and parse it as above.
Result<vmrd_manifest> readManifest(const std::string &path);
Result<std::vector<std::string>> readExportedSymbols(const std::string &path);

// The manifest's strings, safe to print even if the plugin forgot the NUL.
std::string manifestString(const char *field, size_t size);

// The rules of plugin.h that a manifest must keep, checked before any of the
// plugin's code runs: its ABI major is this vmrd's, every string ends with a
// NUL within its array, and the name is a valid plugin name.  The error says
// what to change in the plugin.  Any ABI minor passes (README, "Writing a
// backend": members beyond what both sides know are ignored).
Status checkManifest(const vmrd_manifest &m);

// The one check of a plugin name, [a-z0-9-]+ (plugin.h), for the config,
// the loader and the listing alike: a name becomes part of a file name, so
// it must never hold a slash or a dot.
bool validPluginName(std::string_view name);

} // namespace vmrd
