// SPDX-License-Identifier: MIT
// Runs a fuzz target over files and directories of inputs, for builds
// without libFuzzer: the seed corpora and every crash ever found stay tests.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include "fuzz.h"

int main(int argc, char **argv)
{
	size_t inputs = 0;
	for (int i = 1; i < argc; i++) {
		std::vector<std::filesystem::path> files;
		if (std::filesystem::is_directory(argv[i])) {
			for (const auto &e : std::filesystem::directory_iterator(argv[i]))
				if (e.is_regular_file())
					files.push_back(e.path());
		} else {
			files.emplace_back(argv[i]);
		}
		for (const auto &f : files) {
			std::ifstream in(f, std::ios::binary);
			if (!in) {
				std::cerr << f.string() << ": cannot read\n";
				return 1;
			}
			const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
			                              std::istreambuf_iterator<char>());
			std::cerr << "input " << f.string() << "\n";
			LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
			inputs++;
		}
	}
	std::cout << inputs << " inputs, no crash\n";
	return inputs > 0 ? 0 : 1;
}
