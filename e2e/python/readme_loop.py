import json, os, requests

response = requests.post(
    "http://127.0.0.1:8080/api/v1/chat/completions",
    headers={"Authorization": f"Bearer {os.environ['KEY']}"},
    json={"model": "grok-4.3", "stream": True, "messages": [{"role": "user", "content": "Say hello"}]},
    stream=True,
)
for line in response.iter_lines():
    if line:
        line = line.decode("utf-8")
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:                      # the stream failed after it began
                raise RuntimeError(chunk["error"])    # "API error: <message>"
            content = chunk["choices"][0]["delta"].get("content", "")
            print(content, end="", flush=True)
