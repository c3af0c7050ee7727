// A java.net.http client as an application would write it: one GET, the body on stdout, and any
// failure left to the JVM (an uncaught exception: stack trace on stderr, exit status 1).
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Get {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newHttpClient();
        HttpRequest req = HttpRequest.newBuilder(URI.create(args[0])).build();
        System.out.print(client.send(req, HttpResponse.BodyHandlers.ofString()).body());
    }
}
