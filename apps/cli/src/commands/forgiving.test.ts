// The usual first-hour mistakes: names spelt as vendors write them, options mistyped or
// borrowed from other tools, the plan given either way, files that `mist models --json` writes.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allCommands } from '../main';
import { runCli } from '../test/run-cli';

const examples = path.resolve(__dirname, '../../../../examples/plans');
const small = path.join(examples, 'gpt3-1.3b-1x2-l4.json');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-forgiving-'));

describe('names as vendors write them', () => {
  it('--model and --cluster accept any case and vendor spellings', async () => {
    const res = await runCli(['analyze', small, '--model', 'GPT3-1.3B', '--cluster', '1X2-L4', '--json']);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ model: 'gpt3-1.3b', cluster: '1x2-l4' });
    const h100 = await runCli(['models', '--model', 'meta-llama/Llama-2-7b-hf', '--json']);
    expect(JSON.parse(h100.stdout).name).toBe('llama2-7b');
    const v = await runCli(['validate', small, '--cluster', '1x8-h100', '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ valid: true, cluster: '1x8-h100-sxm' });
  });

  it('an unknown name gets the nearest one and the allowed list; an ambiguous one its candidates (exit 2)', async () => {
    const typo = await runCli(['analyze', small, '--model', 'gpt-1.3b']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/model: got "gpt-1\.3b"; did you mean "gpt3-1\.3b"\? allowed: gpt3-125m, gpt3-350m, gpt3-1\.3b, gpt3-2\.7b/);
    const a100 = await runCli(['analyze', small, '--cluster', '1x2-a100']);
    expect(a100.code).toBe(2);
    expect(a100.stderr).toMatch(/gpu: got "a100"; ambiguous: it could be a100-40gb or a100-80gb/);
  });
});

describe('mistyped options', () => {
  it('names the unknown option and the nearest one of that command, exit 2', async () => {
    const res = await runCli(['analyze', small, '--modle', 'gpt3-1.3b']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^mist analyze: unknown option --modle; did you mean --model\?\nUsage: mist analyze/);
    expect(res.stderr).not.toMatch(/after '--'/);
    const gbs = await runCli(['tune', '--gbs', '3']);
    expect(gbs.stderr).toMatch(/unknown option --gbs; did you mean --global-batch\?/);
    const far = await runCli(['gpus', '--xyzzy']);
    expect(far.code).toBe(2);
    expect(far.stderr).toMatch(/unknown option --xyzzy; options of mist gpus: --json, --local, --help/);
    const missing = await runCli(['analyze', '--plan']);
    expect(missing.stderr).toMatch(/--plan needs a value \(FILE\)/);
  });

  it('an unknown command gets the nearest command', async () => {
    const res = await runCli(['anlyze']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/unknown command "anlyze"; did you mean "analyze"\?/);
  });
});

describe('one way to give a plan', () => {
  it('validate and analyze both take PLAN positionally and as --plan', async () => {
    for (const args of [['validate', small], ['validate', '--plan', small], ['analyze', small], ['analyze', '--plan', small]]) {
      const res = await runCli(args);
      expect(res.code, args.join(' ')).toBe(0);
    }
    const two = await runCli(['analyze', small, '--plan', path.join(examples, 'broken.json')]);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/two plans given/);
  });
});

describe('model files', () => {
  it('`mist models --model X --json` writes what `--model FILE` reads back', async () => {
    const file = path.join(dir, 'm.json');
    fs.writeFileSync(file, (await runCli(['models', '--model', 'gpt3-1.3b', '--json'])).stdout);
    const back = await runCli(['models', '--model', file, '--json']);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toEqual(JSON.parse(fs.readFileSync(file, 'utf8')));
    const tuned = await runCli(['analyze', small, '--model', file, '--json']);
    expect(tuned.code).toBe(0);
    const list = path.join(dir, 'list.json');
    fs.writeFileSync(list, (await runCli(['models', '--json'])).stdout);
    const many = await runCli(['models', '--model', list]);
    expect(many.code).toBe(2);
    expect(many.stderr).toMatch(/expected one model .*mist models --model NAME --json/);
  });

  it('names a Hugging Face config.json after its directory and another file after itself', async () => {
    const hub = path.join(dir, 'Mistral-7B-v0.1');
    fs.mkdirSync(hub, { recursive: true });
    const cfg = { model_type: 'mistral', hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 8, num_hidden_layers: 32,
      intermediate_size: 14336, vocab_size: 32000, max_position_embeddings: 32768 };
    fs.writeFileSync(path.join(hub, 'config.json'), JSON.stringify(cfg));
    fs.writeFileSync(path.join(dir, 'mistral.json'), JSON.stringify(cfg));
    expect(JSON.parse((await runCli(['models', '--model', path.join(hub, 'config.json'), '--json'])).stdout).name).toBe('Mistral-7B-v0.1');
    expect(JSON.parse((await runCli(['models', '--model', path.join(dir, 'mistral.json'), '--json'])).stdout).name).toBe('mistral');
  });
});

describe('usage lines', () => {
  it('list every option of train, analyze, validate and cluster', () => {
    for (const cmd of allCommands().filter((c) => ['train', 'analyze', 'validate', 'cluster'].includes(c.name))) {
      for (const name of Object.keys(cmd.options)) expect(cmd.usage, `${cmd.name} --${name}`).toContain(`--${name}`);
    }
  });
});

describe('connection errors', () => {
  it('say which coordinator could not be reached, without grpc-js\'s framing', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const res = await runCli(['status', '--coordinator', `127.0.0.1:${port}`, '--token', 't']);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`mist status: cannot reach the coordinator at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} ` +
      '(is it running? --coordinator HOST:PORT)\n');
  });

  it('status and launch usage lines show --token', () => {
    for (const cmd of allCommands().filter((c) => ['status', 'launch', 'agents'].includes(c.name))) expect(cmd.usage).toContain('--token TOKEN');
  });
});
