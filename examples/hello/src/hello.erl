%% A tiny HTTP server on the BEAM, standing in for a Gleam app: `gleam export erlang-shipment`
%% output is Erlang bytecode started by entrypoint.sh, which is what this example ships.
-module(hello).
-export([main/0, accept/1, handle/1]).

-define(MESSAGE, "Hello from the BEAM, version 1").

main() ->
    Port = list_to_integer(os:getenv("PORT", "8000")),
    {ok, Listen} = gen_tcp:listen(Port, [binary, {packet, http_bin}, {active, false},
                                         {reuseaddr, true}, {backlog, 1024}]),
    io:format("listening on ~p~n", [Port]),
    accept(Listen).

accept(Listen) ->
    {ok, Socket} = gen_tcp:accept(Listen),
    Pid = spawn(?MODULE, handle, [Socket]),
    ok = gen_tcp:controlling_process(Socket, Pid),
    Pid ! go,
    accept(Listen).

handle(Socket) ->
    receive go -> ok end,
    case read_request(Socket, undefined) of
        {ok, Path} ->
            Body = body(Path),
            Response = ["HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ",
                        integer_to_list(iolist_size(Body)), "\r\nconnection: close\r\n\r\n", Body],
            gen_tcp:send(Socket, Response);
        _ ->
            ok
    end,
    gen_tcp:close(Socket).

read_request(Socket, Path) ->
    case gen_tcp:recv(Socket, 0, 5000) of
        {ok, {http_request, _Method, {abs_path, P}, _Version}} -> read_request(Socket, P);
        {ok, {http_header, _, _, _, _}} -> read_request(Socket, Path);
        {ok, http_eoh} -> {ok, Path};
        Other -> Other
    end.

body(<<"/env">>) ->
    [os:getenv("GREETING", ""), "\n"];
body(_) ->
    [?MESSAGE, " (", os:getenv("GREETING", "hello"), ")\n"].
