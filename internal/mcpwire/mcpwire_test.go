package mcpwire

import "testing"

func TestSSEResponseSkipsNotifications(t *testing.T) {
	stream := "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"
	if got := string(SSEResponse([]byte(stream))); got != `{"jsonrpc":"2.0","id":1,"result":{}}` {
		t.Errorf("SSEResponse = %q", got)
	}
	if got := SSEResponse([]byte("data: {\"method\":\"x\"}\n")); got != nil {
		t.Errorf("a stream without a response gave %q", got)
	}
}
