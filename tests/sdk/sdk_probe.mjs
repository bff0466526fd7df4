// Drives one request through customsd with an official provider SDK and prints
// what the SDK saw as one JSON line on stdout:
//   {"sdk":..., "text": <concatenated streamed text>, "events": <count>,
//    "error": null | {"name", "status", "message"}}
// The C++ test (sdk_test.cpp) starts the fake provider and customsd, runs this,
// and asserts on the line. Usage:
//   node sdk_probe.mjs openai|anthropic BASE_URL PROMPT [stream|once] [PROXY_URL]
// With PROXY_URL the SDK goes through that HTTP proxy (undici's ProxyAgent:
// CONNECT host:443), as an SDK configured for HTTPS_PROXY does; the proxy's
// CA comes from NODE_EXTRA_CA_CERTS.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { ProxyAgent, fetch as undiciFetch } from 'undici';

const [sdk, baseURL, prompt, mode = 'stream', proxy] = process.argv.slice(2);
// The SDKs take a fetch and its options; undici's own fetch goes with its agent.
const transport = proxy ? { fetch: undiciFetch, fetchOptions: { dispatcher: new ProxyAgent(proxy) } } : {};
const out = { sdk, text: '', events: 0, error: null };

function describe(err) {
  return {
    name: err?.constructor?.name ?? 'Error',
    status: typeof err?.status === 'number' ? err.status : null,
    message: String(err?.message ?? err),
    api_error: err instanceof OpenAI.APIError || err instanceof Anthropic.APIError,
  };
}

try {
  if (sdk === 'openai') {
    const client = new OpenAI({ apiKey: 'sk-test', baseURL, maxRetries: 0, timeout: 10000, ...transport });
    const messages = [{ role: 'user', content: prompt }];
    if (mode === 'stream') {
      const stream = await client.chat.completions.create({ model: 'gpt-test', messages, stream: true });
      for await (const chunk of stream) {
        out.events += 1;
        for (const choice of chunk.choices ?? []) out.text += choice.delta?.content ?? '';
      }
    } else {
      const r = await client.chat.completions.create({ model: 'gpt-test', messages });
      out.text = r.choices[0]?.message?.content ?? '';
    }
  } else if (sdk === 'anthropic') {
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL, maxRetries: 0, timeout: 10000, ...transport });
    const params = { model: 'claude-test', max_tokens: 256, messages: [{ role: 'user', content: prompt }] };
    if (mode === 'stream') {
      const stream = await client.messages.create({ ...params, stream: true });
      for await (const ev of stream) {
        out.events += 1;
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') out.text += ev.delta.text;
      }
    } else {
      const r = await client.messages.create(params);
      out.text = r.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
    }
  } else {
    throw new Error(`unknown sdk ${sdk}`);
  }
} catch (err) {
  out.error = describe(err);
}
process.stdout.write(JSON.stringify(out) + '\n');
