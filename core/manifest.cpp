// SPDX-License-Identifier: MIT
// Reads a plugin's manifest from its ELF file without loading it.
//
// dlopen() runs a library's constructors, so checking the manifest after
// loading would run code from a file that may not be a vmrd plugin at all.
// Reading the symbol from the ELF tables first is what libcamera does for
// its IPA modules.
#include "manifest.h"

#include <algorithm>
#include <optional>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmrd {

namespace {

template <typename T> bool readAt(std::string_view image, uint64_t offset, T &out)
{
	if (offset > image.size() || image.size() - offset < sizeof(T))
		return false;
	std::memcpy(&out, image.data() + offset, sizeof(T));
	return true;
}

bool readSection(std::string_view image, const Elf64_Ehdr &eh, unsigned index, Elf64_Shdr &sh)
{
	if (index >= eh.e_shnum)
		return false;
	return readAt(image, eh.e_shoff + uint64_t{index} * eh.e_shentsize, sh);
}

} // namespace

std::string manifestString(const char *field, size_t size)
{
	return std::string(field, strnlen(field, size));
}

bool validPluginName(std::string_view name)
{
	return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
		return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
	});
}

Status checkManifest(const vmrd_manifest &m)
{
	if (m.abi_major != VMRD_ABI_MAJOR)
		return Error{-EPROTO, "built for vmrd plugin ABI " + std::to_string(m.abi_major) +
		                              ", but this vmrd implements ABI " + std::to_string(VMRD_ABI_MAJOR) +
		                              ": use a plugin built for ABI " + std::to_string(VMRD_ABI_MAJOR)};
	const struct {
		const char *field;
		const char *text;
		size_t size;
	} strings[] = {{"name", m.name, sizeof(m.name)},
	               {"version", m.version, sizeof(m.version)},
	               {"vendor", m.vendor, sizeof(m.vendor)}};
	for (const auto &s : strings)
		if (strnlen(s.text, s.size) == s.size)
			return Error{-EBADMSG,
			             std::string("its manifest's ") + s.field + " is not NUL-terminated within its " +
			                     std::to_string(s.size) +
			                     " bytes: rebuild it with a shorter string in VMRD_PLUGIN_MANIFEST()"};
	const std::string name = manifestString(m.name, sizeof(m.name));
	if (!validPluginName(name))
		return Error{-EBADMSG, "its manifest names it '" + name +
		                               "', which is not a plugin name (only a-z, 0-9 and -): rebuild it with a "
		                               "valid name in VMRD_PLUGIN_MANIFEST()"};
	return Ok{};
}

namespace {

// Calls visit(name, symbol) for each symbol that .dynsym defines, until it
// returns true.  Errors only for a file that is not a sound ELF64 object.
template <typename Visit> Status forEachDefinedSymbol(std::string_view image, Elf64_Ehdr &eh, Visit visit)
{
	const Error notElf{-ENOEXEC, "not an ELF64 little-endian shared object"};
	if (!readAt(image, 0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_DYN ||
	    eh.e_shentsize != sizeof(Elf64_Shdr))
		return notElf;

	for (unsigned i = 0; i < eh.e_shnum; i++) {
		Elf64_Shdr symtab, strtab;
		if (!readSection(image, eh, i, symtab))
			return notElf;
		if (symtab.sh_type != SHT_DYNSYM)
			continue;
		if (symtab.sh_entsize != sizeof(Elf64_Sym) || !readSection(image, eh, symtab.sh_link, strtab) ||
		    strtab.sh_offset > image.size() || image.size() - strtab.sh_offset < strtab.sh_size)
			return notElf;
		std::string_view names = image.substr(strtab.sh_offset, strtab.sh_size);
		for (uint64_t s = 0; s < symtab.sh_size / sizeof(Elf64_Sym); s++) {
			Elf64_Sym sym;
			if (!readAt(image, symtab.sh_offset + s * sizeof(Elf64_Sym), sym))
				return notElf;
			if (sym.st_name >= names.size() || sym.st_shndx == SHN_UNDEF)
				continue;
			std::string_view name = names.substr(sym.st_name);
			if (visit(name.substr(0, name.find('\0')), sym))
				return Ok{};
		}
		break;
	}
	return Ok{};
}

} // namespace

Result<vmrd_manifest> parseManifest(std::string_view image)
{
	Elf64_Ehdr eh;
	std::optional<Result<vmrd_manifest>> found;
	auto walked = forEachDefinedSymbol(image, eh, [&](std::string_view name, const Elf64_Sym &sym) {
		if (name != VMRD_PLUGIN_MANIFEST_SYMBOL)
			return false;
		Elf64_Shdr data;
		vmrd_manifest m;
		if (sym.st_size < sizeof(m) || !readSection(image, eh, sym.st_shndx, data) ||
		    data.sh_type == SHT_NOBITS || sym.st_value < data.sh_addr ||
		    !readAt(image, data.sh_offset + (sym.st_value - data.sh_addr), m))
			found = Error{-EBADMSG, "the vmrd_plugin_manifest symbol is truncated or outside the file"};
		else if (m.magic != VMRD_MANIFEST_MAGIC)
			found = Error{-EBADMSG, "vmrd_plugin_manifest has a wrong magic number"};
		else
			found = m;
		return true;
	});
	if (!walked)
		return walked.error();
	if (found)
		return *found;
	return Error{-ENOENT, "not a vmrd plugin: it exports no vmrd_plugin_manifest symbol"};
}

Result<std::vector<std::string>> exportedSymbols(std::string_view image)
{
	Elf64_Ehdr eh;
	std::vector<std::string> names;
	auto walked = forEachDefinedSymbol(image, eh, [&](std::string_view name, const Elf64_Sym &sym) {
		if (ELF64_ST_BIND(sym.st_info) != STB_LOCAL && !name.empty())
			names.emplace_back(name);
		return false;
	});
	if (!walked)
		return walked.error();
	return names;
}

namespace {

template <typename T> Result<T> parseFile(const std::string &path, Result<T> (*parse)(std::string_view image))
{
	// Mapped, not read: the parser touches a few pages (the ELF header,
	// the section headers, .dynsym, .dynstr, the manifest), and a plugin
	// with debug information is megabytes that would all pass through the
	// heap and into the daemon's peak RSS (4.9 MiB for virtio-mem).  Only
	// a file truncated while mapped could fault (SIGBUS), and the loader
	// has checked that only root can write it.
	constexpr off_t maxSize = 64 << 20;
	const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return Error{-errno, std::string("cannot open: ") + std::strerror(errno)};
	struct stat st;
	if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > maxSize) {
		::close(fd);
		return Error{-EFBIG, "not a plugin: larger than 64 MiB, not a regular file or unreadable"};
	}
	if (st.st_size == 0) {
		::close(fd);
		return parse({});
	}
	const auto size = static_cast<size_t>(st.st_size);
	void *image = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
	const int err = errno;
	::close(fd);
	if (image == MAP_FAILED)
		return Error{-err, std::string("cannot map: ") + std::strerror(err)};
	auto parsed = parse(std::string_view(static_cast<const char *>(image), size));
	::munmap(image, size);
	return parsed;
}

} // namespace

Result<vmrd_manifest> readManifest(const std::string &path)
{
	return parseFile(path, parseManifest);
}

Result<std::vector<std::string>> readExportedSymbols(const std::string &path)
{
	return parseFile(path, exportedSymbols);
}

} // namespace vmrd
