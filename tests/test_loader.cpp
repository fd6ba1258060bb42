// SPDX-License-Identifier: MIT
// Tests of the plugin loader against real shared objects, broken on purpose.
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <vector>
#include <gtest/gtest.h>

#include "manifest.h"
#include "plugin_loader.h"
#include "temp_dir.h"

using namespace vmrd;

namespace {

struct LoadCase {
	const char *name;
	int code;
	std::string expected;
	bool codeMayRun; // whether the plugin's constructor may run before the error
};

// By name: gtest would otherwise print the struct's bytes, padding too.
void PrintTo(const LoadCase &c, std::ostream *os)
{
	*os << c.name;
}

class BrokenPlugins : public testing::TestWithParam<LoadCase>
{
};

} // namespace

TEST_P(BrokenPlugins, FailWithTheirOwnMessage)
{
	const LoadCase &c = GetParam();
	PluginLoader loader({BROKEN_PLUGIN_DIR});
	testing::internal::CaptureStderr();
	auto plugin = loader.load(c.name);
	Result<std::unique_ptr<Backend>> backend = Error{};
	if (plugin)
		backend = Backend::create(*plugin, {}, {});
	std::string err = testing::internal::GetCapturedStderr();

	const Error &e = plugin ? backend.error() : plugin.error();
	ASSERT_FALSE(plugin && backend) << c.name << " was accepted";
	EXPECT_EQ(e.code, c.code) << e.message;
	EXPECT_NE(e.message.find(c.expected), std::string::npos) << "message was: " << e.message;
	EXPECT_NE(e.message.find(c.name), std::string::npos) << "message does not name the plugin: " << e.message;
	if (!c.codeMayRun) {
		EXPECT_EQ(err.find("constructor ran"), std::string::npos)
		        << "plugin code ran before the manifest check";
	}
}

INSTANTIATE_TEST_SUITE_P(
        Loader, BrokenPlugins,
        testing::Values(
                LoadCase{"no-manifest", -ENOENT, "not a vmrd plugin: it exports no vmrd_plugin_manifest symbol", false},
                LoadCase{"abi-major", -EPROTO, "built for vmrd plugin ABI 2, but this vmrd implements ABI 1", false},
                LoadCase{"wrong-name", -EBADMSG,
                         "its manifest names it 'someone-else'; the file must be called vmrd-backend-someone-else.so",
                         false},
                LoadCase{"bad-name", -EBADMSG,
                         "its manifest names it 'Bad_Name', which is not a plugin name (only a-z, 0-9 and -): "
                         "rebuild it",
                         false},
                LoadCase{"unterminated", -EBADMSG, "its manifest's version is not NUL-terminated within its 32 bytes",
                         false},
                LoadCase{"no-entry", -ENOEXEC, "has a manifest but no vmrd_plugin_entry_v1 function", true},
                LoadCase{"short-ops", -EBADMSG, "ops table is 8 bytes, shorter than the 48 of ABI 1.0", true},
                LoadCase{"missing-op", -EBADMSG, "required operations missing: plug", true},
                LoadCase{"failing-create", -ENODEV,
                         "create failed in backend 'failing-create': no device at /dev/fake-mem", true}),
        [](const testing::TestParamInfo<LoadCase> &i) {
	        std::string n = i.param.name;
	        for (char &ch : n)
		        if (ch == '-')
			        ch = '_';
	        return n;
        });

// Structs only grow and carry their size, so a plugin built for a newer
// minor runs with what this vmrd knows; the log says so.
TEST(Loader, LoadsAPluginOfANewerMinor)
{
	testing::internal::CaptureStderr();
	auto p = PluginLoader({BROKEN_PLUGIN_DIR}).load("abi-minor");
	const std::string err = testing::internal::GetCapturedStderr();
	ASSERT_TRUE(p) << p.error().message;
	EXPECT_EQ((*p)->info().abiMinor, VMRD_ABI_MINOR + 7u);
	EXPECT_NE(err.find("plugin 'abi-minor' is built for ABI 1." + std::to_string(VMRD_ABI_MINOR + 7) +
	                   ", newer than this vmrd's 1." + std::to_string(VMRD_ABI_MINOR)),
	          std::string::npos)
	        << err;
}

TEST(Loader, NotFoundListsTheDirectoriesSearched)
{
	PluginLoader loader({"/nonexistent/a", BROKEN_PLUGIN_DIR});
	auto p = loader.load("absent");
	ASSERT_FALSE(p);
	EXPECT_EQ(p.error().code, -ENOENT);
	EXPECT_NE(p.error().message.find("no vmrd-backend-absent.so in /nonexistent/a, " BROKEN_PLUGIN_DIR),
	          std::string::npos)
	        << p.error().message;
}

TEST(Loader, RejectsNamesThatCouldEscapeTheDirectory)
{
	PluginLoader loader({BROKEN_PLUGIN_DIR});
	for (const char *name : {"../mock", "Mock", "", "a/b", "mock.so"}) {
		auto p = loader.load(name);
		ASSERT_FALSE(p) << name;
		EXPECT_NE(p.error().message.find("is not a plugin name"), std::string::npos) << p.error().message;
	}
}

TEST(Loader, NotAnElfFile)
{
	TempDir dir;
	std::ofstream(dir.path() + "/vmrd-backend-text.so") << "#!/bin/sh\necho hello\n";
	auto p = PluginLoader({dir.path()}).load("text");
	ASSERT_FALSE(p);
	EXPECT_EQ(p.error().code, -ENOEXEC);
	EXPECT_NE(p.error().message.find("not an ELF64 little-endian shared object"), std::string::npos);
}

// Whoever can write a plugin or its directory could run code as root in
// vmrd: such plugins are refused before any of their code runs, and the
// message says what to fix.
TEST(Loader, RefusesPluginsOthersCanWrite)
{
	namespace fs = std::filesystem;
	TempDir dir;
	const std::string plugins = dir.path() + "/plugins", file = plugins + "/vmrd-backend-mock.so";
	fs::create_directory(plugins);
	fs::copy_file(MOCK_PLUGIN_DIR "/vmrd-backend-mock.so", file);
	fs::permissions(plugins, fs::perms(0755));
	fs::permissions(file, fs::perms(0644));
	ASSERT_TRUE(PluginLoader({plugins}).load("mock")) << "0755 directory, 0644 file: fine";

	fs::permissions(file, fs::perms(0666));
	auto p = PluginLoader({plugins}).load("mock");
	ASSERT_FALSE(p);
	EXPECT_EQ(p.error().code, -EPERM);
	EXPECT_NE(p.error().message.find(file + " is writable by everyone (mode 0666)"), std::string::npos)
	        << p.error().message;
	EXPECT_NE(p.error().message.find("chmod go-w"), std::string::npos);

	fs::permissions(file, fs::perms(0644));
	fs::permissions(plugins, fs::perms(0775));
	p = PluginLoader({plugins}).load("mock");
	ASSERT_FALSE(p);
	EXPECT_NE(p.error().message.find("the directory " + plugins + " is writable by its group (mode 0775)"),
	          std::string::npos)
	        << p.error().message;

	// A symlink from a trusted directory to a plugin in an open one.
	const std::string trusted = dir.path() + "/trusted";
	fs::create_directory(trusted);
	fs::permissions(trusted, fs::perms(0755));
	fs::create_symlink(file, trusted + "/vmrd-backend-mock.so");
	p = PluginLoader({trusted}).load("mock");
	ASSERT_FALSE(p);
	EXPECT_NE(p.error().message.find("writable by its group"), std::string::npos) << p.error().message;

	// Every directory up to / counts: an open one higher up could swap
	// the trusted directory for another.
	fs::permissions(plugins, fs::perms(0755));
	fs::permissions(dir.path(), fs::perms(0777));
	p = PluginLoader({plugins}).load("mock");
	ASSERT_FALSE(p);
	EXPECT_NE(p.error().message.find("the directory " + dir.path() + " is writable by everyone (mode 0777)"),
	          std::string::npos)
	        << p.error().message;
	// With the sticky bit, as /tmp has, only an entry's owner can move it.
	fs::permissions(dir.path(), fs::perms(01777));
	EXPECT_TRUE(PluginLoader({plugins}).load("mock")) << "a sticky directory";
	fs::permissions(dir.path(), fs::perms(0700));

	if (geteuid() != 0)
		GTEST_SKIP() << "changing a file's owner needs root";
	ASSERT_EQ(chown(file.c_str(), 1234, 1234), 0);
	p = PluginLoader({plugins}).load("mock");
	ASSERT_FALSE(p);
	EXPECT_NE(p.error().message.find(file + " belongs to uid 1234, not root"), std::string::npos)
	        << p.error().message;
}

TEST(Loader, ListReportsEveryFile)
{
	auto list = PluginLoader({BROKEN_PLUGIN_DIR, MOCK_PLUGIN_DIR}).list();
	int ok = 0, rejected = 0;
	for (const auto &l : list) {
		if (l.path.find("vmrd-backend-mock.so") != std::string::npos) {
			EXPECT_TRUE(l.ok) << l.problem;
			EXPECT_EQ(l.info.vendor, "vmrd project");
			EXPECT_EQ(l.info.abiMajor, 1u);
		}
		if (l.path.find("vmrd-backend-abi-major.so") != std::string::npos) {
			EXPECT_NE(l.problem.find("ABI 2"), std::string::npos) << l.problem;
		}
		// The listing keeps the loader's rules: a bad name is no plugin.
		if (l.path.find("vmrd-backend-bad-name.so") != std::string::npos) {
			EXPECT_FALSE(l.ok);
			EXPECT_NE(l.problem.find("not a plugin name"), std::string::npos) << l.problem;
		}
		// Its manifest is sound; only loading it finds the missing entry.
		if (l.path.find("vmrd-backend-no-entry.so") != std::string::npos) {
			EXPECT_TRUE(l.ok) << l.problem;
		}
		(l.ok ? ok : rejected)++;
	}
	EXPECT_GE(ok, 1);
	EXPECT_GE(rejected, 4);
}

// Listing reads manifests only, as libcamera reads its IPA module info:
// no file in the directories is loaded, so none of their code runs.
TEST(Loader, ListRunsNoPluginCode)
{
	auto isLoaded = [](const std::string &path) {
		void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
		if (h)
			dlclose(h);
		return h != nullptr;
	};
	const PluginLoader loader({BROKEN_PLUGIN_DIR, MOCK_PLUGIN_DIR});
	const auto before = loader.list();
	ASSERT_FALSE(before.empty());
	std::vector<bool> wasLoaded;
	wasLoaded.reserve(before.size());
	for (const auto &l : before)
		wasLoaded.push_back(isLoaded(l.path));
	const auto after = loader.list();
	ASSERT_EQ(after.size(), before.size());
	for (size_t i = 0; i < after.size(); i++)
		EXPECT_EQ(isLoaded(after[i].path), wasLoaded[i]) << after[i].path << " was loaded by list()";
}

// Boost.DLL must not unload the code a live backend points into.
TEST(Loader, LibraryStaysLoadedWhileABackendLives)
{
	const std::string path = MOCK_PLUGIN_DIR "/vmrd-backend-mock.so";
	auto isLoaded = [&] {
		void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
		if (h)
			dlclose(h);
		return h != nullptr;
	};
	ASSERT_FALSE(isLoaded());
	{
		auto plugin = PluginLoader({MOCK_PLUGIN_DIR}).load("mock");
		ASSERT_TRUE(plugin) << plugin.error().message;
		auto backend = Backend::create(*plugin, {}, {});
		ASSERT_TRUE(backend) << backend.error().message;
		plugin = Error{}; // drop the loader's reference
		EXPECT_TRUE(isLoaded());
		auto s = (*backend)->state();
		ASSERT_TRUE(s) << s.error().message;
		EXPECT_EQ(s->blockSize, 2u << 20);
	}
	EXPECT_FALSE(isLoaded());
}

TEST(Manifest, ReadsTheBuiltPlugin)
{
	auto m = readManifest(MOCK_PLUGIN_DIR "/vmrd-backend-mock.so");
	ASSERT_TRUE(m) << m.error().message;
	EXPECT_EQ(m->abi_major, 1u);
	EXPECT_EQ(manifestString(m->name, sizeof(m->name)), "mock");
}

// Every prefix of a real plugin, and the plugin with bytes flipped, must give
// an error or a manifest, never a crash or a read out of bounds.
TEST(Manifest, SurvivesTruncationAndCorruption)
{
	std::ifstream in(MOCK_PLUGIN_DIR "/vmrd-backend-mock.so", std::ios::binary);
	std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	ASSERT_GT(image.size(), 1000u);
	auto full = parseManifest(image);
	ASSERT_TRUE(full);
	size_t accepted = 0;
	for (size_t len = 0; len < image.size(); len += 97) {
		auto m = parseManifest(std::string_view(image).substr(0, len));
		// A prefix that still holds every table the reader needs may pass,
		// but then it must read the same bytes.
		if (m) {
			accepted++;
			EXPECT_EQ(std::memcmp(&*m, &*full, sizeof(vmrd_manifest)), 0) << "truncated at " << len;
		}
	}
	EXPECT_LT(accepted, image.size() / 97 / 2) << "most prefixes lack the section headers";
	uint64_t rng = 42;
	for (int i = 0; i < 2000; i++) {
		std::string copy = image;
		for (int j = 0; j < 8; j++) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			// Corrupt the headers and tables, where the parser looks.
			size_t pos = (rng >> 33) % std::min<size_t>(copy.size(), 4096);
			copy[pos] = static_cast<char>(rng >> 13);
		}
		(void)parseManifest(copy);
	}
}

namespace {

// A plugin built for ABI 1.0: its ops table ends before export_fds.
int tenCreate(const vmrd_host *, const vmrd_option *, uint32_t, vmrd_backend **out, char *, uint32_t)
{
	static int object;
	*out = reinterpret_cast<vmrd_backend *>(&object);
	return 0;
}

void tenDestroy(vmrd_backend *) {}

vmrd_plugin_info infoOf(const vmrd_backend_ops &ops)
{
	vmrd_plugin_info info{};
	info.struct_size = sizeof(info);
	info.description = "older";
	info.ops = &ops;
	return info;
}

} // namespace

TEST(Loader, APluginOfABI10HoldsNoFds)
{
	vmrd_backend_ops ops{};
	ops.struct_size = offsetof(vmrd_backend_ops, export_fds);
	ops.create = tenCreate;
	ops.destroy = tenDestroy;
	// What lies beyond struct_size is never called, whatever it holds.
	ops.export_fds = reinterpret_cast<decltype(ops.export_fds)>(1);
	ops.adopt_fds = reinterpret_cast<decltype(ops.adopt_fds)>(1);
	const vmrd_plugin_info info = infoOf(ops);
	PluginInfo meta;
	meta.name = "ten";
	auto plugin = std::make_shared<Plugin>(nullptr, &info, meta);
	auto backend = Backend::create(plugin, {}, {});
	ASSERT_TRUE(backend) << backend.error().message;
	EXPECT_FALSE((*backend)->holdsFds());
	auto held = (*backend)->exportFds();
	ASSERT_FALSE(held);
	EXPECT_EQ(held.error().code, -EOPNOTSUPP);
	EXPECT_EQ((*backend)->adoptFds({}).error().code, -EOPNOTSUPP);
}

TEST(Loader, APluginOfABI11HasNoProbe)
{
	vmrd_backend_ops ops{};
	ops.struct_size = offsetof(vmrd_backend_ops, probe);
	ops.create = tenCreate;
	ops.destroy = tenDestroy;
	ops.probe = reinterpret_cast<decltype(ops.probe)>(1); // beyond struct_size: never called
	const vmrd_plugin_info info = infoOf(ops);
	PluginInfo meta;
	meta.name = "eleven";
	const auto probed = Backend::probe(std::make_shared<Plugin>(nullptr, &info, meta), {}, {});
	ASSERT_FALSE(probed);
	EXPECT_EQ(probed.error().code, -EOPNOTSUPP);
}
