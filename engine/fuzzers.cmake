# libFuzzer targets; filled in with the safetensors parser.
