// The module's side of the JSON-RPC 2.0 channel to the `hvcbt rpc` engine process.
//
// Design: this is C# (compiled once per session with Add-Type) rather than PowerShell because the channel needs a
// thread that reads the engine's stdout while the pipeline thread waits, and PowerShell's own event machinery
// (Register-ObjectEvent) only runs handlers when the pipeline is idle. Here a reader thread parses each stdout line,
// matches responses to pending calls by id and queues `$/progress` / `$/log` notifications on the call they belong
// to; the cmdlet's thread drains its call's queue and turns events into Write-Progress / Write-Verbose /
// ErrorRecords itself, so every PowerShell stream call happens on the pipeline thread, as PowerShell requires.
// A second thread keeps the tail of the engine's stderr for error messages.
//
// When the engine dies (stdout reaches EOF, a write to stdin fails, or stdout carries a non-protocol line), every
// pending call fails at once with one message naming the exit code and the stderr tail, and the client is dead:
// the module starts a new engine on the next call.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Text.Json;
using System.Threading;

namespace HvCbt
{
    /// <summary>An error response from the engine, or the failure of the channel itself.</summary>
    public sealed class EngineException : Exception
    {
        /// <summary>JSON-RPC error code (-32xxx); 0 when the channel failed (engine died, protocol broken).</summary>
        public int Code { get; }
        /// <summary>PowerShell ErrorCategory name chosen by the engine (data.category), or the client's choice.</summary>
        public string Category { get; }
        /// <summary>The error's `data` member as JSON text ("null" when absent).</summary>
        public string DataJson { get; }
        /// <summary>The JSON-RPC method of the failed call.</summary>
        public string Method { get; }

        public EngineException(string method, int code, string message, string category, string dataJson)
            : base(message)
        {
            Method = method;
            Code = code;
            Category = category;
            DataJson = dataJson ?? "null";
        }
    }

    public enum EngineEventKind { Progress, Log, Result, Error }

    /// <summary>One thing that happened to a call: a notification for it, or its final answer.</summary>
    public sealed class EngineEvent
    {
        public EngineEventKind Kind { get; internal set; }
        /// <summary>Progress: units done and total; Message is the optional status text.</summary>
        public double Done { get; internal set; }
        public double Total { get; internal set; }
        /// <summary>Log: 'error' | 'warning' | 'info' | 'verbose' | 'debug'.</summary>
        public string Level { get; internal set; }
        public string Message { get; internal set; }
        /// <summary>Result: the `result` member as JSON text.</summary>
        public string ResultJson { get; internal set; }
        /// <summary>Error: the failure (engine error response or dead channel).</summary>
        public EngineException Error { get; internal set; }
        public bool IsFinal => Kind == EngineEventKind.Result || Kind == EngineEventKind.Error;
    }

    /// <summary>A request in flight. The caller drains Events until it sees a final event.</summary>
    public sealed class EngineCall
    {
        public long Id { get; }
        public string Method { get; }
        public BlockingCollection<EngineEvent> Events { get; } = new BlockingCollection<EngineEvent>();
        internal EngineCall(long id, string method) { Id = id; Method = method; }

        /// <summary>Next event, or null after timeoutMs (so the caller can notice Ctrl+C between waits).</summary>
        public EngineEvent Next(int timeoutMs)
        {
            return Events.TryTake(out var ev, timeoutMs) ? ev : null;
        }
    }

    public sealed class EngineClient : IDisposable
    {
        const int StderrTailLines = 40;
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false);
        static readonly List<EngineClient> Live = new List<EngineClient>();

        static EngineClient()
        {
            // Last line of defence: whatever way the host process ends, take the engines with it.
            AppDomain.CurrentDomain.ProcessExit += (s, e) =>
            {
                EngineClient[] all;
                lock (Live) all = Live.ToArray();
                foreach (var c in all) c.Kill();
            };
        }

        readonly Process process;
        readonly object writeLock = new object();
        readonly object stateLock = new object();
        readonly Dictionary<long, EngineCall> pending = new Dictionary<long, EngineCall>();
        readonly LinkedList<string> stderrTail = new LinkedList<string>();
        readonly Thread stdoutThread;
        readonly Thread stderrThread;
        long nextId;
        string deathMessage;

        /// <summary>Engine-wide notifications (`$/log` without an id); the module drains them during calls.</summary>
        public ConcurrentQueue<EngineEvent> Unrouted { get; } = new ConcurrentQueue<EngineEvent>();
        public string CommandLine { get; }
        public int ProcessId { get; }

        /// <summary>Starts `fileName args...` with NODE_OPTIONS removed from its environment.</summary>
        public EngineClient(string fileName, string[] args)
        {
            var psi = new ProcessStartInfo(fileName)
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                StandardInputEncoding = Utf8,
                StandardOutputEncoding = Utf8,
                StandardErrorEncoding = Utf8,
                CreateNoWindow = true,
            };
            foreach (var a in args) psi.ArgumentList.Add(a);
            // A single-executable engine honours NODE_OPTIONS; a user's --inspect or --require must not leak in.
            psi.Environment.Remove("NODE_OPTIONS");
            CommandLine = fileName + (args.Length > 0 ? " " + string.Join(" ", args) : "");
            process = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + CommandLine);
            ProcessId = process.Id;
            process.StandardInput.AutoFlush = true;
            process.StandardInput.NewLine = "\n";
            lock (Live) Live.Add(this);
            stderrThread = new Thread(ReadStderr) { IsBackground = true, Name = "hvcbt-engine-stderr" };
            stdoutThread = new Thread(ReadStdout) { IsBackground = true, Name = "hvcbt-engine-stdout" };
            stderrThread.Start();
            stdoutThread.Start();
        }

        /// <summary>Stops every engine this process started (PowerShell.Exiting): each gets the orderly
        /// Dispose (stdin closed, 3 s to finish, then killed).</summary>
        public static void StopAll()
        {
            EngineClient[] all;
            lock (Live) all = Live.ToArray();
            foreach (var c in all) c.Dispose();
        }

        /// <summary>Starts the engine, or returns null with the reason (no exception crosses into PowerShell, where
        /// a caught exception would still land in the caller's -ErrorVariable).</summary>
        public static EngineClient TryStart(string fileName, string[] args, out Exception error)
        {
            try
            {
                error = null;
                return new EngineClient(fileName, args);
            }
            catch (Exception e)
            {
                error = new InvalidOperationException("could not start the HvCbt engine (" + fileName + "): " + e.Message, e);
                return null;
            }
        }

        /// <summary>False once the engine died or was stopped; the module then starts a new one.</summary>
        public bool IsAlive { get { lock (stateLock) return deathMessage == null; } }

        /// <summary>Number of calls still waiting for an answer.</summary>
        public int PendingCount { get { lock (stateLock) return pending.Count; } }

        /// <summary>The last lines the engine wrote on stderr (diagnostics), oldest first.</summary>
        public string StderrTail
        {
            get { lock (stderrTail) return string.Join("\n", stderrTail); }
        }

        /// <summary>Sends a request; paramsJson must be a JSON object. Never throws for a dead engine: the call
        /// then carries a final Error event.</summary>
        public EngineCall Send(string method, string paramsJson)
        {
            var call = new EngineCall(Interlocked.Increment(ref nextId), method);
            string dead;
            lock (stateLock)
            {
                dead = deathMessage;
                if (dead == null) pending[call.Id] = call;
            }
            if (dead != null)
            {
                call.Events.Add(Failure(call, dead));
                return call;
            }
            var line = "{\"jsonrpc\":\"2.0\",\"id\":" + call.Id + ",\"method\":" + JsonSerializer.Serialize(method) +
                       ",\"params\":" + (string.IsNullOrWhiteSpace(paramsJson) ? "{}" : paramsJson) + "}";
            Write(line);
            return call;
        }

        /// <summary>Asks the engine to cancel a call; its answer (an OperationStopped error) still arrives.</summary>
        public void Cancel(EngineCall call)
        {
            bool isPending;
            lock (stateLock) isPending = pending.ContainsKey(call.Id);
            if (isPending)
                Write("{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":" + call.Id + "}}");
        }

        void Write(string line)
        {
            try
            {
                lock (writeLock) process.StandardInput.WriteLine(line);
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException || e is InvalidOperationException)
            {
                // The reader thread reports the death with the exit code; make sure it happens even if stdout
                // stays open somehow.
                Die("the HvCbt engine stopped accepting requests (" + e.Message + ")", waitForExit: true);
            }
        }

        void ReadStdout()
        {
            try
            {
                string line;
                while ((line = process.StandardOutput.ReadLine()) != null)
                {
                    if (line.Length == 0) continue;
                    if (!Dispatch(line))
                    {
                        var shown = line.Length > 200 ? line.Substring(0, 200) + "..." : line;
                        Die("the HvCbt engine broke the protocol: its stdout carried a line that is not a JSON-RPC " +
                            "message: " + shown, waitForExit: false);
                        Kill();
                        return;
                    }
                }
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException)
            {
            }
            Die(null, waitForExit: true);
        }

        void ReadStderr()
        {
            try
            {
                string line;
                while ((line = process.StandardError.ReadLine()) != null)
                {
                    lock (stderrTail)
                    {
                        stderrTail.AddLast(line);
                        while (stderrTail.Count > StderrTailLines) stderrTail.RemoveFirst();
                    }
                }
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException)
            {
            }
        }

        /// <summary>Routes one stdout line; false when it is not a JSON-RPC message.</summary>
        bool Dispatch(string line)
        {
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException) { return false; }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Array)
                {
                    foreach (var m in root.EnumerateArray()) if (!DispatchOne(m)) return false;
                    return true;
                }
                return DispatchOne(root);
            }
        }

        bool DispatchOne(JsonElement m)
        {
            if (m.ValueKind != JsonValueKind.Object) return false;
            if (m.TryGetProperty("method", out var methodEl) && methodEl.ValueKind == JsonValueKind.String)
            {
                m.TryGetProperty("params", out var p);
                DispatchNotification(methodEl.GetString(), p);
                return true;
            }
            if (!m.TryGetProperty("id", out var idEl)) return false;
            bool hasResult = m.TryGetProperty("result", out var result);
            bool hasError = m.TryGetProperty("error", out var error);
            if (!hasResult && !hasError) return false;
            EngineCall call = null;
            if (idEl.ValueKind == JsonValueKind.Number && idEl.TryGetInt64(out var id))
            {
                lock (stateLock)
                {
                    if (pending.TryGetValue(id, out call)) pending.Remove(id);
                }
            }
            if (call == null)
            {
                // An answer to nothing we sent (e.g. a parse error with id null): keep it visible.
                var what = hasError ? ErrorMessage(error) : "unexpected result";
                Unrouted.Enqueue(new EngineEvent
                {
                    Kind = EngineEventKind.Log,
                    Level = "warning",
                    Message = "engine response for unknown request " + idEl.GetRawText() + ": " + what,
                });
                return true;
            }
            if (hasError)
            {
                var category = "NotSpecified";
                var dataJson = "null";
                if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("data", out var data))
                {
                    dataJson = data.GetRawText();
                    if (data.ValueKind == JsonValueKind.Object && data.TryGetProperty("category", out var c) &&
                        c.ValueKind == JsonValueKind.String)
                        category = c.GetString();
                }
                int code = 0;
                if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("code", out var codeEl) &&
                    codeEl.ValueKind == JsonValueKind.Number)
                    codeEl.TryGetInt32(out code);
                if (category == "NotSpecified") category = CategoryForCode(code);
                call.Events.Add(new EngineEvent
                {
                    Kind = EngineEventKind.Error,
                    Error = new EngineException(call.Method, code, ErrorMessage(error), category, dataJson),
                });
            }
            else
            {
                call.Events.Add(new EngineEvent { Kind = EngineEventKind.Result, ResultJson = result.GetRawText() });
            }
            return true;
        }

        void DispatchNotification(string method, JsonElement p)
        {
            EngineEvent ev;
            if (method == "$/progress" && p.ValueKind == JsonValueKind.Object)
            {
                ev = new EngineEvent
                {
                    Kind = EngineEventKind.Progress,
                    Done = Number(p, "done"),
                    Total = Number(p, "total"),
                    Message = Text(p, "message"),
                };
            }
            else if (method == "$/log" && p.ValueKind == JsonValueKind.Object)
            {
                ev = new EngineEvent { Kind = EngineEventKind.Log, Level = Text(p, "level") ?? "info", Message = Text(p, "message") ?? "" };
            }
            else
            {
                return; // notifications this client does not know are ignored, as JSON-RPC allows
            }
            EngineCall call = null;
            if (p.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.Number && idEl.TryGetInt64(out var id))
            {
                lock (stateLock) pending.TryGetValue(id, out call);
            }
            if (call != null) call.Events.Add(ev);
            else if (ev.Kind == EngineEventKind.Log) Unrouted.Enqueue(ev);
        }

        /// <summary>Marks the client dead and fails every pending call with one message.</summary>
        void Die(string reason, bool waitForExit)
        {
            if (waitForExit)
            {
                // Let the process finish and stderr drain, so the message has the exit code and the last words.
                try { process.WaitForExit(2000); } catch (Exception) { }
                stderrThread.Join(1000);
            }
            List<EngineCall> failed;
            string message;
            lock (stateLock)
            {
                if (deathMessage != null) return;
                string status;
                try { status = process.HasExited ? "exited with code " + process.ExitCode : "is unresponsive"; }
                catch (Exception) { status = "is gone"; }
                message = (reason ?? "the HvCbt engine (pid " + ProcessId + ", " + CommandLine + ") " + status);
                var tail = StderrTail;
                message += tail.Length > 0 ? ". Last engine stderr:\n" + tail : " (it wrote nothing on stderr)";
                deathMessage = message;
                failed = new List<EngineCall>(pending.Values);
                pending.Clear();
            }
            lock (Live) Live.Remove(this);
            foreach (var call in failed) call.Events.Add(Failure(call, message));
        }

        static EngineEvent Failure(EngineCall call, string message)
        {
            return new EngineEvent
            {
                Kind = EngineEventKind.Error,
                Error = new EngineException(call.Method, 0, "'" + call.Method + "' failed: " + message,
                    "ResourceUnavailable", "null"),
            };
        }

        /// <summary>Closes stdin (the engine finishes running requests and exits), waits, then kills.</summary>
        public void Dispose()
        {
            try { lock (writeLock) process.StandardInput.Close(); } catch (Exception) { }
            bool exited = false;
            try { exited = process.WaitForExit(3000); } catch (Exception) { }
            if (!exited) Kill();
            Die("the HvCbt engine was stopped (module removed or PowerShell exiting)", waitForExit: !exited);
            stdoutThread.Join(1000);
        }

        void Kill()
        {
            try { if (!process.HasExited) process.Kill(entireProcessTree: true); } catch (Exception) { }
        }

        static string ErrorMessage(JsonElement error)
        {
            if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) &&
                m.ValueKind == JsonValueKind.String)
                return m.GetString();
            return error.GetRawText();
        }

        /// <summary>Category for errors whose data names none (the standard JSON-RPC codes).</summary>
        static string CategoryForCode(int code)
        {
            switch (code)
            {
                case -32700: case -32600: return "ProtocolError";
                case -32601: return "NotImplemented";
                case -32602: return "InvalidArgument";
                default: return "NotSpecified";
            }
        }

        static double Number(JsonElement o, string name)
        {
            return o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
        }

        static string Text(JsonElement o, string name)
        {
            return o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        }
    }
}
