import java.net.*; import java.io.*; import java.util.*;
public class RuntimeClient {
  static List<Socket> pool = new ArrayList<>();
  public static void main(String[] a) throws Exception {
    int hold = Integer.parseInt(a[0]), close = Integer.parseInt(a[1]);
    boolean plant = a[2].equals("plant");
    pool.add(new Socket("127.0.0.1", hold));
    try (Socket s = new Socket("127.0.0.1", close)) { s.getInputStream().read(); }
    if (plant) { Socket l = new Socket("127.0.0.1", close); l.getInputStream().read(); pool.add(l); }
    System.out.println("ok");
    System.exit(0);
  }
}
